"""``--only browser``: dataset uploads from a real browser, and what they cost Django.

Debian's Chromium (Playwright) uses the admin's Dataset add page of a Django process
started for the bench (``manage.py runserver --noreload --insecure``: threaded, the
widget sends parallel requests; settings :mod:`.browser_settings`, a SQLite file, the
internal store on a second SeaweedFS, the external one on the bench's). Cases:

* **form**: JavaScript off, the ordinary form upload: Django parses the multipart body
  into its temp file, then streams it to the store with its SHA-256;
* **direct**: JavaScript on, ``direct_upload.js``: the browser hashes and PUTs 16 MiB
  parts to the store; Django signs, completes and reads the object back once, in a
  thread of the web process (``CHECK: "thread"``, the default) or in a ``manage.py
  db_worker`` process (``CHECK: "task"``);
* **folder**: many small files, through the widget's folder picker (its ``<input
  webkitdirectory>``) when the add page offers one; else by a small script in the page
  that drives the folder API (``docs/uploads.md``: WebCrypto SHA-256, batches signed, six
  PUTs at once, Chromium's connections per host) from an ``<input webkitdirectory>`` the
  bench adds. The row's label says which.

Each case runs on a fresh web process, after an untimed warm-up upload of the same kind
(imports, first queries). Measured: wall time from choosing the file (the form: from
Save) to the row being ready and the admin's list shown; the CPU seconds (utime + stime,
``/proc``) of the web process, and of the worker; their peak RSS (``VmHWM``, reset after
the warm-up through ``clear_refs``). For ``CHECK: "thread"`` the web process's CPU between
the widget showing "verifying" and "done" is the read-back (and the polls meanwhile).
Every row is checked after: status ready and the file's SHA-256 (each file's, for the
folder). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dual_storage_app.testing.server import LocalS3Server, free_port_pair

from .cpu import CpuMeter
from .memory import seaweed_vacuum, write_test_file
from .migration import empty
from .report import MB, size_label

KiB, MiB = 1024, 1024**2
REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
FULL_FIGURES = (1024 * MiB, 2000, 256 * KiB)  # the file; the folder's files and their size
QUICK_FIGURES = (32 * MiB, 100, 256 * KiB)
CHECKS = ("thread", "task")
ADD_PAGE = "/admin/dual_storage_app/dataset/add/"
CHANGELIST = "/admin/dual_storage_app/dataset/"
WIDGET = "[data-dual-upload]"
USERNAME, PASSWORD = "bench-admin", "bench-only-password"  # a throw-away database's
FOLDER_IN_FLIGHT = 6  # Chromium's connections per host (HTTP/1.1)
WORKER_INTERVAL = "0.25"  # db_worker's polling, seconds (its default is 1)
VACUUM_FROM = 256 * MiB
SETTINGS_MODULE = "bench.browser_settings"
BUCKET = "browser"  # the buckets are browser-weights ... browser-datasets

# The folder API as a page's script would drive it (docs/uploads.md, "Folders"): start
# with the file list, hash and sign a batch while the previous one is sent, PUT each file
# whole with the signed headers, complete, poll until the server's read-back is done.
# Progress in <html data-bench-folder>: uploading, verifying, done, corrupt or error.
FOLDER_SCRIPT = """
async function benchFolder({startUrl, name, inFlight}) {
  const root = document.documentElement;
  const files = Array.from(document.getElementById("bench-folder").files);
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const paths = files.map((f) => f.webkitRelativePath.split("/").slice(1).join("/"));
  async function api(method, url, body) {
    const init = {method, credentials: "same-origin", headers: {Accept: "application/json"}};
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrf;
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const data = await response.json();
    if (!response.ok) {
      throw new Error(`${method} ${url}: ${response.status} ${data.error || ""}`);
    }
    return data;
  }
  function base64(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 1) text += String.fromCharCode(bytes[i]);
    return btoa(text);
  }
  try {
    root.dataset.benchFolder = "uploading";
    const listed = files.map((f, i) => ({path: paths[i], size: f.size}));
    const session = await api("POST", startUrl, {name, files: listed});
    if (files.some((f) => f.size > session.part_size)) {
      throw new Error("this script sends small files only (each at most one part)");
    }
    const batch = Math.max(1, session.sign_batch || 1);
    async function prepare(start) {
      const chunk = files.slice(start, start + batch);
      const sums = await Promise.all(chunk.map(async (f) =>
        base64(await crypto.subtle.digest("SHA-256", await f.arrayBuffer()))));
      const wanted = sums.map((sha256, k) => ({index: start + k, sha256}));
      return (await api("POST", session.urls.sign, {files: wanted})).files;
    }
    async function send(signed) {
      let next = 0;
      async function lane() {
        while (next < signed.length) {
          const item = signed[next++];
          const response = await fetch(item.url,
            {method: "PUT", headers: item.headers, body: files[item.index]});
          if (!response.ok) {
            const text = await response.text();
            throw new Error(`PUT ${paths[item.index]}: ${response.status} ${text}`);
          }
        }
      }
      await Promise.all(Array.from({length: inFlight}, lane));
    }
    let ready = prepare(0);
    for (let start = 0; start < files.length; start += batch) {
      const signed = await ready;
      if (start + batch < files.length) {
        ready = prepare(start + batch);
        ready.catch(() => {});  // awaited on the next turn
      }
      await send(signed);
    }
    await api("POST", session.urls.complete, {});
    root.dataset.benchFolder = "verifying";
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1000));  // as the widget polls
      const detail = await api("GET", session.urls.detail);
      if (detail.dataset && detail.dataset.status !== "verifying") {
        root.dataset.benchFolder = detail.dataset.status === "ready" ? "done" : "corrupt";
        return {dataset: detail.dataset.id, status: detail.dataset.status};
      }
    }
  } catch (error) {
    root.dataset.benchFolder = "error";
    return {error: String(error && error.message || error)};
  }
}
"""


@dataclass
class Measured:
    """One case's figures (``None``: not measured for this case)."""

    case: str  # "form", "direct" or "folder"
    check: str  # where the read-back ran: "thread", "task", or "" (the form: no read-back)
    size: int  # bytes uploaded
    files: int = 1
    seconds: float | None = None
    django_cpu: float | None = None
    readback_cpu: float | None = None  # the web process's, from "verifying" to "done"
    django_start_kib: int | None = None  # RSS after the warm-up
    django_peak_kib: int | None = None
    worker_cpu: float | None = None
    worker_peak_kib: int | None = None
    note: str | None = None  # why there are no figures
    via: str = ""  # how a folder was sent: WIDGET_PICKER or PAGE_SCRIPT

    @property
    def ok(self) -> bool:
        return self.note is None and self.seconds is not None and self.django_cpu is not None

    @property
    def label(self) -> str:
        if self.case == "form":
            return f"form upload (JS off), {size_label(self.size)}"
        if self.case == "direct":
            return f"direct from the browser, {size_label(self.size)}"
        how = {WIDGET_PICKER: ", widget", PAGE_SCRIPT: ", page script"}.get(self.via, "")
        return f"folder{how}, {self.files:,} x {size_label(self.size // self.files)}"


@dataclass(frozen=True)
class Figures:
    """What to upload: one file of ``size`` bytes, a folder of ``files`` x ``file_size``."""

    size: int
    files: int
    file_size: int


def parse_folder(text: str) -> tuple[int, int]:
    """``"2000x256KiB"`` -> (2000, 262144)."""
    from .report import parse_size

    count, _, size = text.lower().partition("x")
    if not size:
        raise ValueError(f"{text!r}: expected COUNTxSIZE, e.g. 2000x256KiB")
    return int(count.replace(",", "").replace("_", "")), parse_size(size)


# -- processes --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status_kib(pid: int, field: str) -> int:
    """``VmHWM`` or ``VmRSS`` of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Managed:
    """A ``manage.py`` subprocess in its own process group, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.meter = CpuMeter(self.process.pid)

    def cpu(self) -> float:
        """CPU seconds of the process group so far (utime + stime)."""
        return self.meter.sample().server

    def rss_kib(self) -> int:
        return _status_kib(self.process.pid, "VmRSS")

    def peak_kib(self) -> int:
        return _status_kib(self.process.pid, "VmHWM")

    def reset_peak(self) -> None:
        """Set ``VmHWM`` to the current RSS (``clear_refs`` 5)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 400) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " ".join(text[-chars:].split())

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Site:
    """The Django project under test: its settings, database, and server processes."""

    def __init__(
        self, workdir: Path, internal: LocalS3Server, external: LocalS3Server, port: int
    ) -> None:
        self.workdir = workdir
        self.internal, self.external = internal, external
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.database = workdir / "browser.sqlite3"

    def env(self, check: str) -> dict[str, str]:
        """The subprocesses' environment: our settings module and its JSON; nothing of the
        caller's S3, AWS or Django configuration."""
        dropped = ("AWS_", "DJANGO_", "DUAL_STORAGE", "INTERNAL_", "EXTERNAL_", "S3_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        config = {
            "workdir": str(self.workdir),
            "bucket": BUCKET,
            "check": check,
            **{
                name: {
                    "endpoint_url": server.endpoint_url,
                    "access_key": server.access_key,
                    "secret_key": server.secret_key,
                }
                for name, server in (("internal", self.internal), ("external", self.external))
            },
        }
        env.update(
            DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
            BENCH_BROWSER_CONFIG=json.dumps(config),
            NO_PROXY="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> None:
        env = {**self.env("thread"), **(extra_env or {})}
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"manage.py {args[0]} exited {done.returncode}: {done.stderr[-400:]}"
            )

    def prepare(self) -> None:
        """Tables, buckets, a superuser, and the CORS rule for the site's origin."""
        self.manage("migrate", "--verbosity", "0")
        self.manage("dualstorage_createbuckets")
        self.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            USERNAME,
            "--email",
            "bench@example.invalid",
            extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        )
        self.manage("dualstorage_cors", "--set", "--origin", self.origin)

    @contextlib.contextmanager
    def serving(self, check: str) -> Iterator[tuple[Managed, Managed | None]]:
        """A fresh web process (and, for ``CHECK: "task"``, a db_worker) until the end."""
        env = self.env(check)
        web = Managed(
            ["runserver", "--noreload", "--insecure", "--skip-checks", f"127.0.0.1:{self.port}"],
            env,
            self.logs / f"runserver-{check}.log",
        )
        worker = None
        try:
            if check == "task":
                worker = Managed(
                    ["db_worker", "--interval", WORKER_INTERVAL, "--no-startup-delay"],
                    env,
                    self.logs / "db_worker.log",
                )
            self._wait_until_up(web)
            yield web, worker
        finally:
            web.stop()
            if worker is not None:
                worker.stop()

    def _wait_until_up(self, web: Managed, timeout: float = 60) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with opener.open(f"{self.origin}/admin/login/", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if not web.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"runserver did not come up: {web.tail()}")
            time.sleep(0.2)

    def row(self, name: str, dataset: int | None) -> tuple[int, str, int, str, int]:
        """(id, status, size, sha256, file_count) of dataset ``dataset``, or of the newest
        one called ``name``."""
        columns = "SELECT id, status, size, sha256, file_count FROM dual_storage_app_dataset "
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
            if dataset is not None:
                found = db.execute(columns + "WHERE id = ?", (dataset,)).fetchone()
            else:
                query = columns + "WHERE name = ? ORDER BY id DESC LIMIT 1"
                found = db.execute(query, (name,)).fetchone()
        if found is None:
            raise RuntimeError(f"no dataset row {dataset or name!r}")
        return found  # type: ignore[no-any-return]

    def file_hashes(self, dataset: int) -> dict[str, str]:
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT path, sha256 FROM dual_storage_app_datasetfile WHERE dataset_id = ?",
                (dataset,),
            ).fetchall()
        return dict(rows)


# -- one upload of each kind --------------------------------------------------------------


@functools.cache
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def _wait_for(page: Any, expression: str, states: tuple[str, ...], timeout: float) -> str:
    """Wait until ``expression`` (the page's state) is one of ``states``; return it."""
    page.wait_for_function(
        f"states => states.includes({expression})",
        arg=list(states),
        polling=100,
        timeout=timeout * 1000,
    )
    state: str = page.evaluate(expression)
    return state


WIDGET_STATE = f"document.querySelector('{WIDGET}').dataset.state"
FOLDER_STATE = "document.documentElement.dataset.benchFolder"
FINAL = ("done", "corrupt", "error", "paused")


@dataclass
class Upload:
    """One upload through the add page: ``prepare`` untimed, ``go`` timed (it calls
    ``at_verifying`` when the browser learns the server is reading the upload back)."""

    site: Site
    page: Any
    source: Path
    name: str
    timeout: float
    dataset: int | None = None  # the row's id, when the browser learnt it

    def prepare(self) -> None:
        self.page.goto(self.site.origin + ADD_PAGE)

    def go(self, at_verifying: Callable[[], None]) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """The row is ready and holds the file's SHA-256 (untimed)."""
        _, status, size, sha256, _ = self.site.row(self.name, self.dataset)
        if status != "ready" or size != self.source.stat().st_size:
            raise RuntimeError(f"row {self.name!r} is {status}, {size:,} bytes")
        if sha256 != _sha256(self.source):
            raise RuntimeError(f"row {self.name!r} holds SHA-256 {sha256[:12]}, not the file's")

    def save(self) -> None:
        self.page.click("input[name=_save]")
        self.page.wait_for_url(f"{self.site.origin}{CHANGELIST}", timeout=self.timeout * 1000)


class FormUpload(Upload):
    """JavaScript off: the file goes through the form when Save is pressed."""

    def prepare(self) -> None:
        super().prepare()
        if self.page.get_attribute(WIDGET, "data-dual-upload-ready") is not None:
            raise RuntimeError("the widget's script ran with JavaScript off")
        self.page.fill("#id_name", self.name)
        self.page.set_input_files("#id_file", str(self.source))

    def go(self, at_verifying: Callable[[], None]) -> None:
        self.save()


class DirectUpload(Upload):
    """JavaScript on: the widget sends the file to the store, then Save records it."""

    INPUT: ClassVar[str] = "#id_file"

    def prepare(self) -> None:
        super().prepare()
        if self.page.get_attribute(WIDGET, "data-dual-upload-ready") is None:
            raise RuntimeError("the widget's script did not run")
        self.page.fill("#id_name", self.name)

    def go(self, at_verifying: Callable[[], None]) -> None:
        self.page.set_input_files(self.INPUT, str(self.source))
        state = _wait_for(self.page, WIDGET_STATE, ("verifying", *FINAL), self.timeout)
        if state == "verifying":
            at_verifying()
            state = _wait_for(self.page, WIDGET_STATE, FINAL, self.timeout)
        if state != "done":
            status = self.page.inner_text("[data-dual-upload-status]")
            raise RuntimeError(f"the widget ended {state}: {status}")
        self.dataset = int(self.page.get_attribute(WIDGET, "data-dataset-id"))
        self.save()


def check_folder(upload: Upload) -> None:
    """The folder's row is ready; each file's recorded SHA-256 is the local file's."""
    dataset, status, size, _, count = upload.site.row(upload.name, upload.dataset)
    files = sorted(p for p in upload.source.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    if status != "ready" or count != len(files) or size != total:
        raise RuntimeError(f"folder row is {status}, {count} files, {size:,} bytes")
    local = {p.relative_to(upload.source).as_posix(): _sha256(p) for p in files}
    if upload.site.file_hashes(dataset) != local:
        raise RuntimeError("the folder's recorded SHA-256s are not the files'")


class WidgetFolderUpload(DirectUpload):
    """The widget's own folder picker (its ``<input webkitdirectory>``), then Save."""

    INPUT = "[data-dual-upload-folder]"

    def check(self) -> None:
        check_folder(self)


class ScriptFolderUpload(Upload):
    """A folder chosen in an ``<input webkitdirectory>`` the bench adds to the page, sent
    by :data:`FOLDER_SCRIPT` (for a widget without a folder picker)."""

    def prepare(self) -> None:
        super().prepare()
        self.page.evaluate(
            """() => {
              const input = document.createElement("input");
              Object.assign(input, {type: "file", id: "bench-folder", webkitdirectory: true});
              document.body.append(input);
            }"""
        )

    def go(self, at_verifying: Callable[[], None]) -> None:
        self.page.set_input_files("#bench-folder", str(self.source))
        arguments = {
            "startUrl": "/storage/uploads/folders/",
            "name": self.name,
            "inFlight": FOLDER_IN_FLIGHT,
        }
        self.page.evaluate(
            f"args => {{ window.benchFolderResult = ({FOLDER_SCRIPT.strip()})(args); }}",
            arguments,
        )
        final = ("verifying", "done", "corrupt", "error")
        state = _wait_for(self.page, FOLDER_STATE, final, self.timeout)
        if state == "verifying":
            at_verifying()
        result: dict[str, Any] = self.page.evaluate("() => window.benchFolderResult")
        if "error" in result or result.get("status") != "ready":
            raise RuntimeError(f"folder upload: {result}")
        self.dataset = int(result["dataset"])

    def check(self) -> None:
        check_folder(self)


WIDGET_PICKER, PAGE_SCRIPT = "the widget's picker", "a page script"


def folder_picker(site: Site, page: Any) -> str:
    """How a folder is sent: the widget's picker when the add page shows one (the script
    ran, the page offers folders), else :data:`FOLDER_SCRIPT`."""
    page.goto(site.origin + ADD_PAGE)
    controls = page.query_selector("[data-dual-upload-folder-controls]")
    shown = controls is not None and controls.is_visible()
    has_input = page.query_selector("[data-dual-upload-folder]") is not None
    return WIDGET_PICKER if shown and has_input else PAGE_SCRIPT


def upload_kind(row: Measured) -> type[Upload]:
    if row.case == "form":
        return FormUpload
    if row.case == "direct":
        return DirectUpload
    return WidgetFolderUpload if row.via == WIDGET_PICKER else ScriptFolderUpload


def measure(
    site: Site,
    browser: Any,
    row: Measured,
    source: Path,
    warm_up: Path,
    timeout: float,
) -> Measured:
    """One case on a fresh web process: log in, warm up (untimed), then the upload."""
    try:
        with site.serving(row.check or "thread") as (web, worker):
            context = browser.new_context(java_script_enabled=row.case != "form")
            try:
                page = context.new_page()
                page.goto(f"{site.origin}/admin/login/?next=/admin/")
                page.fill("#id_username", USERNAME)
                page.fill("#id_password", PASSWORD)
                page.click("input[type=submit]")
                page.wait_for_url(f"{site.origin}/admin/")
                if row.case == "folder":
                    row.via = folder_picker(site, page)
                upload_class = upload_kind(row)
                name = f"{row.case}-{row.check or 'form'}"
                warm = upload_class(site, page, warm_up, f"warm-up-{name}", 120)
                warm.prepare()
                warm.go(lambda: None)
                warm.check()
                timed = upload_class(site, page, source, f"bench-{name}", timeout)
                timed.prepare()
                processes = [p for p in (web, worker) if p is not None]
                for process in processes:
                    process.reset_peak()
                row.django_start_kib = web.rss_kib()
                at_verifying: list[float] = []
                cpu_before = [p.cpu() for p in processes]
                started = time.perf_counter()
                timed.go(lambda: at_verifying.append(web.cpu()))
                row.seconds = time.perf_counter() - started
                cpu_after = [p.cpu() for p in processes]
                done_cpu = cpu_after[0]
                row.django_cpu = done_cpu - cpu_before[0]
                row.django_peak_kib = web.peak_kib()
                if worker is not None:
                    row.worker_cpu = cpu_after[1] - cpu_before[1]
                    row.worker_peak_kib = worker.peak_kib()
                if at_verifying and row.check == "thread" and row.case != "form":
                    row.readback_cpu = done_cpu - at_verifying[0]
                timed.check()
            finally:
                context.close()
    except Exception as exc:
        row.note = f"error: {type(exc).__name__}: {exc}"[:300]
        row.seconds = None
    return row


# -- the section -------------------------------------------------------------------------


def write_folder(root: Path, files: int, size: int) -> None:
    """``files`` files of random bytes in shards of 100: ``shard-00/img-00000.bin``..."""
    for number in range(files):
        path = root / f"shard-{number // 100:02d}" / f"img-{number:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def run(
    external: LocalS3Server,
    workdir: Path,
    figures: Figures,
    checks: tuple[str, ...] = CHECKS,
) -> tuple[list[Measured], str]:
    """Every case; the rows and the section's text (table and notes)."""
    cases = [
        Measured("form", "", figures.size),
        *(Measured("direct", check, figures.size) for check in checks),
        *(
            Measured("folder", check, figures.files * figures.file_size, files=figures.files)
            for check in checks
        ),
    ]
    missing = _missing_browser()
    if missing:
        for case in cases:
            case.note = missing
        return cases, format_table(cases)
    from playwright.sync_api import sync_playwright

    base = workdir / "browser"
    base.mkdir()
    internal = LocalS3Server(
        data_dir=base / "internal-server",
        s3_port=free_port_pair(),
        access_key="browser-internal-access",
        secret_key="browser-internal-secret-key",
    )
    version = "?"
    try:
        internal.start()
        site = Site(base, internal, external, _free_port())
        site.prepare()
        source, folder = base / "dataset.bin", base / "folder"
        small, small_folder = base / "warm-up.bin", base / "warm-up-folder"
        write_test_file(source, figures.size)
        write_test_file(small, 20 * MiB)  # two parts: the widget's whole path
        write_folder(folder, figures.files, figures.file_size)
        write_folder(small_folder, 3, figures.file_size)
        timeout = max(600.0, figures.size / MB)  # >= 1 MB/s
        datasets = f"{BUCKET}-datasets"
        client = external.client()
        reclaim = seaweed_vacuum(external) if figures.size >= VACUUM_FROM else lambda: None
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--no-proxy-server",
                ],
            )
            version = browser.version
            try:
                for case in cases:
                    is_folder = case.case == "folder"
                    print(f"browser: {case.label}, CHECK {case.check or '-'}", flush=True)
                    measure(
                        site,
                        browser,
                        case,
                        folder if is_folder else source,
                        small_folder if is_folder else small,
                        timeout,
                    )
                    empty(client, datasets)
                    reclaim()
            finally:
                browser.close()
    except Exception as exc:
        for case in cases:
            if case.seconds is None and case.note is None:
                case.note = f"error: {type(exc).__name__}: {exc}"[:300]
    finally:
        internal.kill()  # throw-away data
        shutil.rmtree(base, ignore_errors=True)
    return cases, format_table(cases) + "\n" + footnote(version, cases)


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return "n/a (Debian's chromium not installed)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "n/a (playwright not installed)"
    return None


# -- the table ----------------------------------------------------------------------------


def _mib(kib: int | None) -> str:
    return "" if kib is None else f"{kib / 1024:.0f}"


def format_table(rows: list[Measured]) -> str:
    """Plain text, one row per case; the last column compares the web process's CPU with
    the form upload's (same file)."""
    form = next((r for r in rows if r.case == "form" and r.ok), None)
    header = [
        "case",
        "CHECK",
        "wall s",
        "MB/s",
        "Django CPU s",
        "of it read-back",
        "Django RSS MB start/peak",
        "worker CPU s",
        "worker peak MB",
        "Django CPU vs form",
    ]
    lines: list[list[str]] = []
    for row in rows:
        cells = [row.label, row.check or "-"]
        if not row.ok or row.seconds is None or row.django_cpu is None:
            lines.append([*cells, row.note or "n/a", *[""] * (len(header) - 3)])
            continue
        ratio = "-"
        if form is not None and form.django_cpu and row.case != "folder":
            ratio = f"{row.django_cpu / form.django_cpu:.1%}"
        lines.append(
            [
                *cells,
                f"{row.seconds:.1f}",
                f"{row.size / MB / row.seconds:,.0f}",
                f"{row.django_cpu:.2f}",
                "" if row.readback_cpu is None else f"{row.readback_cpu:.2f}",
                f"{_mib(row.django_start_kib)}/{_mib(row.django_peak_kib)}",
                "" if row.worker_cpu is None else f"{row.worker_cpu:.2f}",
                _mib(row.worker_peak_kib),
                ratio,
            ]
        )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join(["Browser uploads:", line(header), rule, *(line(c) for c in lines)])


def footnote(chromium: str, rows: list[Measured]) -> str:
    folder = (
        "Folder: the widget's folder picker (its <input webkitdirectory>), then Save."
        if any(r.via == WIDGET_PICKER for r in rows)
        else "Folder: the widget has no folder picker; a script in the add page drives the "
        f"folder API (WebCrypto SHA-256, batches signed, {FOLDER_IN_FLIGHT} PUTs at once) "
        "from an <input webkitdirectory>."
    )
    return "\n".join(
        [
            f"Chromium {chromium} (Playwright, headless) -> Django runserver (threaded, "
            "--noreload) and SeaweedFS, all on loopback; a fresh web process per case, after "
            "an untimed warm-up upload.",
            "wall: choosing the file (form: pressing Save) to the admin's list after Save "
            "(page script: to the server reporting it ready), the row checked after: status "
            "ready, the file's SHA-256. The widget and the page script poll every second.",
            "Django CPU: utime + stime of the web process; read-back: its CPU from the "
            'widget\'s "verifying" to "done" (CHECK "thread"); worker: manage.py db_worker '
            f'(CHECK "task", polling every {WORKER_INTERVAL} s). RSS: VmHWM, reset after the '
            "warm-up.",
            folder,
        ]
    )
