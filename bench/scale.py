"""``--only scale`` / ``python -m bench.scale``: how the catalog's chores grow with N objects.

For each count N (default 1,000, 10,000 and 100,000; ``--quick``: 200 and 1,000) the
external store's datasets bucket holds N objects of 1 KiB under ``datasets/scale/`` (put
by raw boto3, 64 threads: setup, not ours), and the bench's Django (:mod:`.djangoenv`,
SQLite) is timed doing what a project does with them:

* ``dualstorage_adopt --kind datasets --prefix datasets/scale/``: the N objects have no
  row; each is read once (SHA-256) and gets one (the run that creates the N rows);
* ``dualstorage_verify --kind datasets``: every row re-read and compared; then with
  ``--quick`` (a HEAD each);
* ``dual_storage.list_objects("datasets", "datasets/scale/")`` read to the end
  (ListObjectsV2, 1,000 a page);
* the folder API ``storage/datasets/<pk>/files/`` paged to the end through Django's test
  client (1,000 files a page, each with a presigned link and its audit record), for a
  folder dataset whose N ``DatasetFile`` rows name the same objects (rows by
  ``bulk_create``: setup);
* the Dataset admin changelist with N rows: the first page, a search and a filtered
  page, each the median of a few renders after a warm-up, as the bench's superuser.

Every step is checked (untimed): adopt recorded every object with its SHA-256, verify
found nothing wrong, the listing and the folder API returned N entries, the changelist
counted N rows (one for the search). S3 requests are counted on the datasets store's
boto3 client; CPU seconds are the bench's and the server's. Counts are run in ascending
order on one growing set of objects; rows are dropped between counts. Nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dual_storage_app.testing.server import LocalS3Server

from .contenders import raw_client
from .cpu import CpuMeter, CpuSample
from .djangoenv import bucket_names, configure, login_session, superuser
from .target import Target, own_server

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

T = TypeVar("T")
KiB = 1024
OBJECT_SIZE = KiB
FULL_COUNTS = (1_000, 10_000, 100_000)
QUICK_COUNTS = (200, 1_000)
PREFIX = "datasets/scale/"
FOLDER_KEY = "datasets/scale.manifest.json"  # its folder prefix is PREFIX
PUT_THREADS = 64
PAGE_RENDERS = 5  # renders of each admin page (after one warm-up); the median is reported
CHANGELIST = "/admin/dual_storage_app/dataset/"
SEARCH_INDEX = 42  # the object the admin search looks for
WARM_UP = 50  # objects of an untimed first round (imports, templates, connections)
# adopt and verify send one request per object, one at a time (here ~6 ms an object for
# adopt, ~2 for verify, ~1.8 with --quick): above this many objects, verify is not run
# and adopt adopts this many of the N (the others recorded by bulk_create). Uncapped, the
# default counts took 24 minutes on 2 cores (adopt 100,000: 626 s; verify 238 s; --quick
# 187 s); with this cap, about 7.5 minutes. None: no cap.
READS_UP_TO = 10_000
BUCKET = "bench"

OBJECT, PAGE = "object", "page"
SETUP = "(setup, not ours)"
ADOPT = "dualstorage_adopt"
VERIFY = "dualstorage_verify"
VERIFY_QUICK = "dualstorage_verify --quick"
LIST = "list_objects, every page"
FILES_API = "folder files API, every page"
ADMIN_FIRST = "admin changelist, first page"
ADMIN_SEARCH = "admin changelist, search"
ADMIN_FILTER = "admin changelist, status filter"


@dataclass(frozen=True)
class Row:
    """One timed operation at one count.

    ``items`` is what ``seconds`` is divided by: objects handled (``unit`` "object") or
    pages rendered (``unit`` "page"; ``seconds`` is then the median of one render)."""

    count: int  # objects in the bucket, rows in the table
    operation: str
    seconds: float | None  # None: not measured (see note)
    items: int
    unit: str = OBJECT
    requests: int | None = None  # S3 requests sent by the datasets store's client
    request_kinds: str = ""  # "GetObject 1,000"
    client_cpu: float | None = None
    server_cpu: float | None = None
    ours: bool = True  # False: setup the bench does, no figure of ours
    note: str | None = None  # an error, or what was left out

    @property
    def per_item(self) -> float | None:
        """Seconds per object (or per page)."""
        if self.seconds is None or self.items <= 0:
            return None
        return self.seconds / self.items

    @property
    def per_item_text(self) -> str:
        """``"412.3 us/object"`` or ``"38.1 ms/page"``."""
        per = self.per_item
        if per is None:
            return ""
        if self.unit == PAGE:
            return f"{per * 1e3:,.1f} ms/page"
        return f"{per * 1e6:,.1f} us/object"


def growth(rows: Sequence[Row]) -> dict[tuple[str, int], float]:
    """Each row's time per item over that of the same operation at its smallest count:
    1.0 is linear for a per-object row (flat for a per-page row), 2.0 is twice the cost
    of each item."""
    smallest: dict[str, float] = {}
    for row in sorted(rows, key=lambda r: r.count):
        per = row.per_item
        if per is not None and per > 0 and row.operation not in smallest:
            smallest[row.operation] = per
    ratios: dict[tuple[str, int], float] = {}
    for row in rows:
        per, base = row.per_item, smallest.get(row.operation)
        if per is not None and base:
            ratios[(row.operation, row.count)] = per / base
    return ratios


def format_table(rows: Sequence[Row]) -> str:
    """One line per row, in run order: count, operation, wall s, per item, its growth
    from the smallest count, S3 requests, CPU seconds (bench, server), note."""
    header = ["count", "operation", "wall s", "per item", "vs smallest", "S3 requests"]
    header += ["bench CPU s", "server CPU s", "note"]
    ratios = growth(rows)
    lines: list[list[str]] = []
    for row in rows:
        ratio = ratios.get((row.operation, row.count))
        requests = "" if row.requests is None else f"{row.requests:,}"
        if row.request_kinds:
            requests += f" ({row.request_kinds})"
        lines.append(
            [
                f"{row.count:,}",
                row.operation if row.ours else f"{row.operation} {SETUP}",
                "" if row.seconds is None else f"{row.seconds:.3f}",
                row.per_item_text,
                "" if ratio is None else f"{ratio:.2f}x",
                requests,
                "" if row.client_cpu is None else f"{row.client_cpu:.2f}",
                "" if row.server_cpu is None else f"{row.server_cpu:.2f}",
                row.note or "",
            ]
        )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    numeric = {0, 2, 3, 4, 5, 6, 7}

    def text(cells: list[str]) -> str:
        return " | ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip(" |")  # no trailing empty cells

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([text(header), rule, *(text(line) for line in lines)])


def object_key(index: int) -> str:
    return f"{PREFIX}obj-{index:07d}.bin"


def object_body(index: int) -> bytes:
    """1 KiB, different for every object (so every SHA-256 differs)."""
    return hashlib.sha256(str(index).encode()).digest() * (OBJECT_SIZE // 32)


def object_sha256(index: int) -> str:
    return hashlib.sha256(object_body(index)).hexdigest()


def pool_client(target: Target) -> S3Client:
    """A raw boto3 client with a connection for each of the :data:`PUT_THREADS`."""
    return raw_client(target, max_pool_connections=PUT_THREADS)


def put_objects(client: S3Client, bucket: str, indexes: Iterable[int]) -> None:
    """Put the objects ``indexes`` (raw boto3, :data:`PUT_THREADS` at once)."""

    def put(index: int) -> None:
        client.put_object(Bucket=bucket, Key=object_key(index), Body=object_body(index))

    with ThreadPoolExecutor(PUT_THREADS) as pool:
        for _ in pool.map(put, indexes):
            pass


def delete_prefix(client: S3Client, bucket: str) -> None:
    """Delete every object under :data:`PREFIX` (1,000 per request)."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=PREFIX):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": i["Key"]} for i in page.get("Contents", [])]
        if batch:
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


class RequestCounter:
    """S3 requests sent through one boto3 client, by operation (``before-send``), until
    :meth:`close`."""

    def __init__(self, client: Any) -> None:
        self.sent: Counter[str] = Counter()
        self.client = client
        client.meta.events.register("before-send.s3", self._count)

    def close(self) -> None:
        self.client.meta.events.unregister("before-send.s3", self._count)

    def _count(self, event_name: str = "", **kwargs: Any) -> None:
        self.sent[event_name.rsplit(".", 1)[-1]] += 1  # "before-send.s3.GetObject"

    def since(self, before: Counter[str]) -> tuple[int, str]:
        spent = self.sent - before
        kinds = ", ".join(f"{name} {number:,}" for name, number in sorted(spent.items()))
        return sum(spent.values()), kinds


class LineClock(io.TextIOBase):
    """A command's stdout that keeps the moment each line starting with ``prefix`` was
    written (``dualstorage_adopt`` writes one per object as it goes)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.moments: list[float] = []

    def write(self, text: str) -> int:
        if text.startswith(self.prefix):
            self.moments.append(time.perf_counter())
        return len(text)


def tenths(moments: Sequence[float]) -> tuple[float, float] | None:
    """Seconds per line in the first and in the last tenth of ``moments`` (None under
    20 lines): whether a run slows down as it goes."""
    if len(moments) < 20:
        return None
    step = len(moments) // 10
    first = (moments[step] - moments[0]) / step
    last = (moments[-1] - moments[-1 - step]) / step
    return first, last


@dataclass
class Timed:
    """What one timed call cost."""

    seconds: float
    requests: int
    request_kinds: str
    cpu: CpuSample


class Scale:
    """The section's state: Django, the bucket, the counters."""

    def __init__(
        self, server: LocalS3Server, target: Target, reads_up_to: int | None = READS_UP_TO
    ) -> None:
        configure(target)
        from django.conf import settings
        from django.test import Client

        from dual_storage_app.client import dual_storage

        self.reads_up_to = reads_up_to
        self.diagnostics: list[str] = []  # lines printed under the table
        self.bucket = bucket_names(target)["EXTERNAL_BUCKET_DATASETS"]
        self.raw = pool_client(target)
        store, _ = dual_storage.locate("datasets")
        self.counter = RequestCounter(store.client)
        self.meter = CpuMeter(server.process.pid if server.process else None)
        self.browser = Client()
        self.browser.cookies[settings.SESSION_COOKIE_NAME] = login_session(superuser())
        self.present = 0  # objects 0 .. present-1 are in the bucket
        self.folder_pk = 0  # the folder dataset of the files API, once made

    def timed(self, step: Callable[[], T]) -> tuple[Timed, T]:
        requests_before = Counter(self.counter.sent)
        cpu_before = self.meter.sample()
        start = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - start
        cpu = self.meter.spent(cpu_before, self.meter.sample())
        requests, kinds = self.counter.since(requests_before)
        return Timed(seconds, requests, kinds, cpu), result

    @staticmethod
    def row(count: int, operation: str, timed: Timed, items: int, **extra: Any) -> Row:
        return Row(
            count,
            operation,
            timed.seconds,
            items,
            requests=timed.requests,
            request_kinds=timed.request_kinds,
            client_cpu=timed.cpu.client,
            server_cpu=timed.cpu.server,
            **extra,
        )

    # -- setup -------------------------------------------------------------------

    def preconditions(self) -> str | None:
        """Why the section cannot run here (verify reads every Dataset row), or None."""
        from dual_storage_app.models import Dataset

        rows = Dataset.objects.count()
        if rows:
            return f"the Dataset table holds {rows} row(s) of another section; it must be empty"
        listed = self.raw.list_objects_v2(Bucket=self.bucket, Prefix=PREFIX, MaxKeys=1)
        if listed.get("KeyCount"):
            return f"{self.bucket}/{PREFIX} is not empty"
        return None

    def grow(self, count: int) -> Row:
        """Put objects until the bucket holds ``count`` (setup)."""
        added = count - self.present
        timed, _ = self.timed(
            lambda: put_objects(self.raw, self.bucket, range(self.present, count))
        )
        self.present = count
        return Row(
            count,
            f"put {added:,} objects, raw boto3 x{PUT_THREADS}",
            timed.seconds,
            added,
            client_cpu=timed.cpu.client,
            server_cpu=timed.cpu.server,
            ours=False,
        )

    def capped(self, count: int) -> bool:
        return self.reads_up_to is not None and count > self.reads_up_to

    def record_rows(self, count: int, indexes: Sequence[int]) -> Row:
        """Dataset rows for the objects ``indexes``, as adopt would write them (setup)."""
        from dual_storage_app.models import Dataset

        start = time.perf_counter()
        Dataset.objects.bulk_create(
            (
                Dataset(
                    name=object_key(i),
                    file=object_key(i),
                    bucket=self.bucket,
                    size=OBJECT_SIZE,
                    sha256=object_sha256(i),
                    content_type="application/octet-stream",
                )
                for i in indexes
            ),
            batch_size=2000,
        )
        return Row(
            count,
            f"{len(indexes):,} Dataset rows, bulk_create",
            time.perf_counter() - start,
            len(indexes),
            ours=False,
        )

    def drop_rows(self) -> None:
        """Delete the Dataset and DatasetFile rows (all ours: the table was empty) and
        the link records of our keys, never the objects (raw SQL: a model delete deletes
        each row's object, or a folder's, and loads every row for its signal)."""
        from django.db import connection

        from dual_storage_app.models import Dataset, DatasetFile, IssuedLink

        def table(model: type[Any]) -> str:
            return str(connection.ops.quote_name(model._meta.db_table))

        key = connection.ops.quote_name("key")
        with connection.cursor() as cursor:  # the models' own tables and columns
            cursor.execute(f"DELETE FROM {table(DatasetFile)}")  # noqa: S608
            cursor.execute(f"DELETE FROM {table(Dataset)}")  # noqa: S608
            cursor.execute(f"DELETE FROM {table(IssuedLink)} WHERE {key} LIKE %s", [PREFIX + "%"])  # noqa: S608

    def clean(self) -> None:
        self.drop_rows()
        delete_prefix(self.raw, self.bucket)
        self.present = 0

    # -- the measured operations ---------------------------------------------------

    def adopt(self, count: int) -> list[Row]:
        """``dualstorage_adopt`` of the objects without a row: all ``count`` of them, or
        above :attr:`reads_up_to` that many, spread over the listing (the others get
        their rows by ``bulk_create`` first: setup)."""
        from django.core.management import call_command

        from dual_storage_app.models import Dataset

        rows: list[Row] = []
        adopted = count
        if self.reads_up_to is not None and self.capped(count):
            stride = count // self.reads_up_to
            known = [i for i in range(count) if i % stride or i // stride >= self.reads_up_to]
            rows.append(self.record_rows(count, known))
            adopted = count - len(known)
        clock = LineClock("adopted")
        timed, _ = self.timed(
            lambda: call_command(
                "dualstorage_adopt", "--kind", "datasets", "--prefix", PREFIX, stdout=clock
            )
        )
        recorded = dict(Dataset.objects.values_list("file", "sha256"))
        wrong = sum(recorded.get(object_key(i)) != object_sha256(i) for i in range(count))
        notes = []
        if wrong or len(recorded) != count or len(clock.moments) != adopted:
            notes.append(
                f"error: {len(clock.moments)} adopted, {len(recorded)} row(s), "
                f"{wrong} object(s) without their SHA-256"
            )
        if adopted != count:
            notes.append(f"{adopted:,} of {count:,} adopted, the rest had rows")
        pace = tenths(clock.moments)
        if pace is not None:
            notes.append(f"first/last tenth {pace[0] * 1e3:.2f}/{pace[1] * 1e3:.2f} ms/object")
        rows.append(self.row(count, ADOPT, timed, adopted, note="; ".join(notes) or None))
        return rows

    def verify(self, count: int, *, quick: bool) -> Row:
        from django.core.management import CommandError, call_command

        arguments = ["--kind", "datasets", *(["--quick"] if quick else [])]
        output = io.StringIO()
        note = None
        if self.capped(count):
            return Row(
                count,
                VERIFY_QUICK if quick else VERIFY,
                None,
                count,
                note=f"not run: above {self.reads_up_to:,} objects (--reads-up-to)",
            )
        try:
            timed, _ = self.timed(
                lambda: call_command("dualstorage_verify", *arguments, stdout=output)
            )
        except CommandError as exc:
            return Row(count, VERIFY_QUICK if quick else VERIFY, None, count, note=f"error: {exc}")
        if f"Checked {count} row(s): 0 problem(s)." not in output.getvalue():
            note = f"error: {output.getvalue().strip()[-160:]}"
        return self.row(count, VERIFY_QUICK if quick else VERIFY, timed, count, note=note)

    def listing(self, count: int) -> Row:
        from dual_storage_app.client import dual_storage

        timed, listed = self.timed(
            lambda: sum(1 for _ in dual_storage.list_objects("datasets", PREFIX))
        )
        note = None if listed == count else f"error: listed {listed}"
        return self.row(count, LIST, timed, count, note=note)

    def admin_pages(self, count: int) -> list[Row]:
        """The changelist's first page, a search for one object and a status filter."""
        search = object_key(SEARCH_INDEX).rsplit("/", 1)[1]
        pages: tuple[tuple[str, dict[str, str], int], ...] = (
            (ADMIN_FIRST, {}, count),
            (ADMIN_SEARCH, {"q": search}, 1),
            (ADMIN_FILTER, {"status__exact": "ready"}, count),
        )
        rows: list[Row] = []
        for operation, query, expected in pages:
            renders: list[Timed] = []
            note = None
            for attempt in range(PAGE_RENDERS + 1):
                timed, response = self.timed(partial(self.browser.get, CHANGELIST, query))
                content = response.content.decode(errors="replace")
                status = response.status_code
                if status != 200 or not re.search(rf"(?<![\d,]){expected} datasets?\b", content):
                    note = f"error: HTTP {status}, no '{expected} dataset' in the page"
                    break
                if attempt:  # the first is a warm-up
                    renders.append(timed)
            if note or not renders:
                rows.append(Row(count, operation, None, 1, unit=PAGE, note=note))
                continue
            median = statistics.median(t.seconds for t in renders)
            rows.append(
                Row(
                    count,
                    operation,
                    median,
                    1,
                    unit=PAGE,
                    requests=max(t.requests for t in renders),
                    client_cpu=statistics.median(t.cpu.client for t in renders),
                    server_cpu=statistics.median(t.cpu.server for t in renders),
                    note=f"median of {len(renders)}",
                )
            )
        return rows

    def folder(self, count: int) -> Row:
        """A folder dataset of the ``count`` objects: its row and ``DatasetFile`` rows
        (setup, by ``bulk_create``), untimed."""
        from dual_storage_app.models import Dataset, DatasetFile

        start = time.perf_counter()
        folder = Dataset.objects.create(
            name="scale folder",
            file=FOLDER_KEY,
            bucket=self.bucket,
            size=count * OBJECT_SIZE,
            sha256="0" * 64,
            file_count=count,
        )
        DatasetFile.objects.bulk_create(
            (
                DatasetFile(
                    dataset=folder,
                    path=object_key(i).removeprefix(PREFIX),
                    size=OBJECT_SIZE,
                    sha256=object_sha256(i),
                )
                for i in range(count)
            ),
            batch_size=2000,
        )
        self.folder_pk = folder.pk
        return Row(
            count,
            "folder row + DatasetFile rows, bulk_create",
            time.perf_counter() - start,
            count,
            ours=False,
        )

    def files_api(self, count: int) -> Row:
        """Every page of ``storage/datasets/<pk>/files/``, following ``next``."""
        pages: list[int] = []  # files in each page

        def every_page() -> str | None:
            url: str | None = f"/storage/datasets/{self.folder_pk}/files/"
            while url is not None:
                response = self.browser.get(url)
                if response.status_code != 200:
                    return f"HTTP {response.status_code} on page {len(pages) + 1}"
                data = response.json()
                pages.append(len(data["files"]))
                url = data["next"]
            return None

        timed, problem = self.timed(every_page)
        if problem is None and sum(pages) != count:
            problem = f"{sum(pages)} file(s) in {len(pages)} page(s)"
        note = f"error: {problem}" if problem else f"{len(pages)} page(s)"
        return self.row(count, FILES_API, timed, count, note=note)

    def changelist_queries(self, count: int) -> None:
        """One more render of the changelist's first page, its SQL captured: the number
        of queries, their time, the slowest (kept in :attr:`diagnostics`)."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            self.browser.get(CHANGELIST)
            seconds = time.perf_counter() - start
        timings = sorted(
            ((float(q["time"]), str(q["sql"])) for q in captured.captured_queries), reverse=True
        )
        sql = sum(t for t, _ in timings)
        slowest = "; ".join(f"{t * 1e3:.0f} ms {shorten(text)}" for t, text in timings[:3])
        self.diagnostics.append(
            f"changelist at {count:,} rows: {len(timings)} queries, {sql * 1e3:.0f} ms of "
            f"{seconds * 1e3:.0f} ms in SQL; slowest: {slowest}"
        )

    def measure(self, count: int) -> list[Row]:
        """Every operation at ``count`` objects (the bucket holds them, no row yet)."""
        rows = self.adopt(count)
        if any(row.note and row.note.startswith("error") for row in rows):
            return rows  # verify needs the rows adopt writes
        rows.append(self.verify(count, quick=False))
        rows.append(self.verify(count, quick=True))
        rows.append(self.listing(count))
        rows += self.admin_pages(count)
        self.changelist_queries(count)
        rows.append(self.folder(count))
        rows.append(self.files_api(count))
        return rows


def shorten(sql: str, width: int = 150) -> str:
    """A query on one line for a note: table prefixes and quotes dropped, a long column
    list elided, at most ``width`` characters."""
    text = re.sub(r"\s+", " ", sql).replace('"dual_storage_app_dataset".', "").replace('"', "")
    text = re.sub(r"^SELECT (DISTINCT )?(.{40}).*? FROM ", r"SELECT \1\2... FROM ", text)
    return text if len(text) <= width else text[: width - 3] + "..."


def footnote(rows: Sequence[Row], seconds: float, reads_up_to: int | None) -> str:
    largest = max((row.count for row in rows), default=0)
    cap = (
        f"Above {reads_up_to:,} objects verify is not run and adopt adopts {reads_up_to:,} "
        "of them, spread over the listing (--reads-up-to; 0 lifts it)."
        if reads_up_to is not None and largest > reads_up_to
        else ""
    )
    return "\n".join(
        [
            f"Scale: N objects of {OBJECT_SIZE:,} B in the datasets bucket of the bench's "
            f"SeaweedFS, Django on SQLite; per item is wall s / N (admin pages: one render, "
            f"median of {PAGE_RENDERS} after a warm-up); 'vs smallest' is the time per item "
            "over that at the smallest count (1.00x: linear, or flat for a page).",
            "adopt reads one object at a time (one GET, then one INSERT in its own "
            "transaction); verify reads 16 at once (a GET each, or a HEAD with --quick); "
            "the files API presigns each file and writes its audit record. Rows marked "
            "'not ours' are the bench's setup.",
            f"Section: {seconds:.0f} s in all, largest count {largest:,}. {cap}".rstrip(),
        ]
    )


def run(
    server: LocalS3Server,
    target: Target,
    counts: Sequence[int],
    *,
    reads_up_to: int | None = READS_UP_TO,
) -> tuple[list[Row], str]:
    """Time every operation at each count (ascending), after an untimed round of
    :data:`WARM_UP` objects; the rows and the text to print (the table, its footnote and
    the changelist's queries). ``reads_up_to``: see :data:`READS_UP_TO`."""
    started = time.perf_counter()
    scale = Scale(server, target, reads_up_to)
    problem = scale.preconditions()
    if problem is not None:
        failed = [Row(0, "scale", None, 0, note=f"error: {problem}")]
        return failed, format_table(failed)
    rows: list[Row] = []
    try:
        scale.grow(WARM_UP)
        scale.measure(WARM_UP)
        scale.diagnostics.clear()
        for count in sorted(set(counts)):
            scale.drop_rows()
            rows.append(scale.grow(count))
            rows += scale.measure(count)
    finally:
        scale.clean()
        scale.counter.close()
    notes = footnote(rows, time.perf_counter() - started, reads_up_to)
    return rows, "\n".join([format_table(rows), "", notes, *scale.diagnostics])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--counts", nargs="+", type=int, help="default 1000 10000 100000")
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 objects")
    parser.add_argument("--workdir", type=Path, help="where the server and files live")
    parser.add_argument(
        "--reads-up-to",
        type=int,
        default=READS_UP_TO,
        help=f"verify runs, and adopt adopts, at most this many objects (default "
        f"{READS_UP_TO:,}; 0: no cap): each is one request in sequence",
    )
    args = parser.parse_args(argv)
    args.reads_up_to = args.reads_up_to or None
    args.counts = args.counts or list(QUICK_COUNTS if args.quick else FULL_COUNTS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with own_server(BUCKET, prefix="dual-storage-bench-", workdir=args.workdir) as (server, target):
        rows, text = run(server, target, args.counts, reads_up_to=args.reads_up_to)
    print("\n" + text)
    return 1 if any(row.note and row.note.startswith("error") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
