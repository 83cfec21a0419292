"""One measurement: ``python -m bench.memory_child TARGET PATH SOURCE NAME [BODY TOKEN BOUNDARY]``.

Run by :mod:`bench.memory` in a fresh interpreter. Configures Django for the bench
(:mod:`bench.djangoenv`), moves ``SOURCE`` up and back down along ``PATH``, checks the
result, reads its own peak RSS (``VmHWM``), deletes what it created, and prints one JSON
line: ``{"path", "peak_kib", "upload_peak_kib", "seconds"}``. ``NAME`` is the artifact's
file and row name (it contains :data:`KEY_MARK`, by which the parent sweeps leftovers).

Paths (each uploads the file, then downloads it to a scratch file):

* ``baseline``: Django set up, every module the paths use imported, the store's client
  built (``configure`` creates the buckets); nothing moved.
* ``client``: ``dual_storage.upload_weight`` / ``download_weight``.
* ``filefield``: ``ModelWeight(file=File(open(SOURCE, "rb"))).save()`` in
  ``transaction.atomic``; read back through the row's ``file.open()`` (the storage's
  ``_open``), copied out in 1 MiB blocks.
* ``admin``: the multipart ``BODY`` file (written by the parent) POSTed to the ModelWeight
  admin add view through ``WSGIHandler`` with a logged-in superuser's session cookie and a
  real CSRF token (``csrftoken`` cookie = ``csrfmiddlewaretoken`` field = ``TOKEN``), so
  Django's own multipart parser and upload handlers stream it from ``wsgi.input``; read
  back through the admin's download link (the stream-through view), also via WSGI.
* ``command``: ``call_command("dualstorage_upload")`` then ``dualstorage_download``.
"""

from __future__ import annotations

import importlib
import io
import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .djangoenv import configure, login_session, superuser
from .target import Target

MiB = 1024 * 1024
KEY_MARK = "bench-memory"  # in every key a child creates (the parent sweeps by it)
ADMIN_HOST = "127.0.0.1"

Cleanup = Callable[[], None]


def vmhwm_kib() -> int:
    """This process's peak RSS so far, in KiB (``VmHWM`` in ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("No VmHWM in /proc/self/status (Linux only).")


class Run:
    """What one path needs, and the peak RSS after its upload phase."""

    def __init__(self, source: Path, dest: Path, name: str, extra: list[str]) -> None:
        self.source, self.dest, self.name, self.extra = source, dest, name, extra
        self.size = source.stat().st_size
        self.upload_peak_kib = 0

    def uploaded(self) -> None:
        self.upload_peak_kib = vmhwm_kib()

    def check_download(self) -> None:
        got = self.dest.stat().st_size
        if got != self.size:
            raise RuntimeError(f"downloaded {got} bytes, expected {self.size}")


def path_baseline(run: Run) -> Cleanup:
    run.uploaded()
    return lambda: None


def path_client(run: Run) -> Cleanup:
    from dual_storage_app.client import dual_storage

    key = f"{KEY_MARK}/{run.name}"
    result = dual_storage.upload_weight(file_path=run.source, weight_key=key)
    if result.size != run.size:
        raise RuntimeError(f"uploaded {result.size} bytes, expected {run.size}")
    run.uploaded()
    dual_storage.download_weight(weight_key=key, dest_path=run.dest)
    run.check_download()
    return lambda: dual_storage.delete("weights", key)


def _delete_row(pk: Any) -> Cleanup:
    from dual_storage_app.models import ModelWeight

    def delete() -> None:
        ModelWeight.objects.filter(pk=pk).delete()  # the object goes with it (post_delete)

    return delete


def _row_of_size(pk: Any, size: int) -> Any:
    from dual_storage_app.models import ModelWeight

    row = ModelWeight.objects.get(pk=pk)
    if row.size != size or not row.sha256:
        raise RuntimeError(f"row {pk} records {row.size} bytes, expected {size}")
    return row


def path_filefield(run: Run) -> Cleanup:
    from django.core.files.base import File
    from django.db import transaction

    from dual_storage_app.models import ModelWeight

    with transaction.atomic(), run.source.open("rb") as handle:
        row = ModelWeight(name=run.name, file=File(handle, name=run.name))
        row.save()
    row = _row_of_size(row.pk, run.size)
    run.uploaded()
    with row.file.open("rb") as stored, run.dest.open("wb") as out:
        shutil.copyfileobj(stored, out, MiB)
    row.file.close()
    run.check_download()
    return _delete_row(row.pk)


def _wsgi(
    method: str, path: str, cookies: str, body: io.BufferedReader | None = None, **meta: str
) -> tuple[str, dict[str, str], Iterable[bytes]]:
    """Call Django's WSGI handler; returns status, headers and the (open) response."""
    from django.core.handlers.wsgi import WSGIHandler

    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": ADMIN_HOST,
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": f"{ADMIN_HOST}:8000",
        "HTTP_COOKIE": cookies,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": body if body is not None else io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **meta,
    }
    answer: dict[str, Any] = {}

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
    ) -> Callable[[bytes], object]:
        answer["status"], answer["headers"] = status, dict(headers)
        return lambda data: None  # the legacy write(): Django never calls it

    response = WSGIHandler()(environ, start_response)
    return answer["status"], answer["headers"], response


def path_admin(run: Run) -> Cleanup:
    from django.urls import reverse

    from dual_storage_app.models import ModelWeight

    body, token, boundary = Path(run.extra[0]), run.extra[1], run.extra[2]
    cookies = f"sessionid={login_session(superuser())}; csrftoken={token}"
    with body.open("rb") as stream:
        status, headers, response = _wsgi(
            "POST",
            reverse("admin:dual_storage_app_modelweight_add"),
            cookies,
            stream,
            CONTENT_TYPE=f"multipart/form-data; boundary={boundary}",
            CONTENT_LENGTH=str(body.stat().st_size),
        )
        b"".join(response)  # a redirect: a few bytes
        response.close()  # type: ignore[attr-defined]  # request_finished, temp file removed
    changelist = reverse("admin:dual_storage_app_modelweight_changelist")
    if not status.startswith("302") or headers.get("Location") != changelist:
        raise RuntimeError(f"admin add answered {status} -> {headers.get('Location')}")
    pk = ModelWeight.objects.filter(name=run.name).values_list("pk", flat=True).get()
    _row_of_size(pk, run.size)
    run.uploaded()
    download = reverse("dual_storage_app:artifact-download", kwargs={"kind": "weights", "pk": pk})
    status, headers, response = _wsgi("GET", download, cookies)
    with run.dest.open("wb") as out:
        for chunk in response:
            out.write(chunk)
    response.close()  # type: ignore[attr-defined]
    if not status.startswith("200"):
        raise RuntimeError(f"admin download answered {status}")
    run.check_download()
    return _delete_row(pk)


def path_command(run: Run) -> Cleanup:
    from django.core.management import call_command

    out = io.StringIO()
    source = str(run.source)
    call_command("dualstorage_upload", "weights", source, "--name", run.name, "--json", stdout=out)
    pk = json.loads(out.getvalue())["id"]
    _row_of_size(pk, run.size)
    run.uploaded()
    out = io.StringIO()
    call_command("dualstorage_download", "weights", "--id", str(pk), str(run.dest), stdout=out)
    run.check_download()
    return _delete_row(pk)


PATHS: dict[str, Callable[[Run], Cleanup]] = {
    "baseline": path_baseline,
    "client": path_client,
    "filefield": path_filefield,
    "admin": path_admin,
    "command": path_command,
}


def import_everything() -> None:
    """The modules any path uses, so the baseline carries the same import cost."""
    from django.core.management import load_command_class

    for module in ("django.core.handlers.wsgi", "dual_storage_app.admin", "dual_storage_app.views"):
        importlib.import_module(module)
    for name in ("dualstorage_upload", "dualstorage_download"):
        load_command_class("dual_storage_app", name)


def main(argv: list[str]) -> int:
    raw = json.loads(argv[0])
    target = Target(**{**raw, "workdir": Path(raw["workdir"])})
    path, source, name, extra = argv[1], Path(argv[2]), argv[3], argv[4:]
    configure(target)
    import_everything()
    scratch = target.workdir / "memory-scratch"
    scratch.mkdir(exist_ok=True)
    run = Run(source, scratch / f"{uuid.uuid4().hex}.download", name, extra)
    started = time.perf_counter()
    cleanup = PATHS[path](run)
    seconds = time.perf_counter() - started
    peak = vmhwm_kib()
    try:
        cleanup()
    finally:
        run.dest.unlink(missing_ok=True)
    result = {"path": path, "peak_kib": peak, "upload_peak_kib": run.upload_peak_kib}
    print(json.dumps({**result, "seconds": round(seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
