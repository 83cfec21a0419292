"""Folder datasets from a real browser (Debian's Chromium through Playwright): the admin's
Dataset add page sends a folder, chosen with "Choose a folder…" (``webkitdirectory``),
straight to the external store (``direct_upload.js``): small files whole, each one signed
``PutObject``, and a large one by parts. The server reads every file back and writes the
manifest beside them.

2,000 small files and a large one become a verified folder dataset whose manifest and
``DatasetFile`` rows list every file with its real SHA-256. A cut of the network and a
reload resume the same session, sending only what the store lacks; Pause and Resume go
on from what the store holds; Cancel leaves nothing under the prefix and no multipart
upload. A dropped folder (or several dropped files) goes as a folder; a small file whose
answer was lost is done when the store answers 412; a path the server refuses is shown
in its words. A user's own form (the README's example) takes a folder too. Screenshots
go to ``test-artifacts/browser/folder-upload-*.png``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.manifests import read_manifest
from dual_storage_app.models import Dataset, DatasetFile
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server
from dual_storage_app.uploads.session import UploadedFile, UploadSession
from tests.helpers import SCREENSHOTS, admin_url, changelist, log_in_to_admin, sha256
from tests.real.test_direct_upload_browser import (
    WIDGET,
    Store,
    allow_browsers,
    quick_retries,
    wait_for_count,
    wait_for_state,
    wait_until_checked,
    widget_data,
)

pytestmark = [pytest.mark.real_s3, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PART = 5 * MiB
FOLDER_INPUT = "[data-dual-upload-folder]"
Listing = dict[str, tuple[int, str]]  # path -> (size, SHA-256 hex)


@pytest.fixture
def store(
    public_endpoint: str,
    live_server: Any,
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
) -> Iterator[Store]:
    """Direct uploads on with 5 MiB parts, and the CORS rule for the live server."""
    settings.DUAL_STORAGE_UPLOADS = {"PART_BYTES": PART}
    _, bucket = real_storage.locate("datasets")
    client = s3_servers["external"].client()
    allow_browsers(client, bucket, live_server.url)
    yield Store(client, bucket)
    client.delete_bucket_cors(Bucket=bucket)


def make_folder(root: Path, small: int, large: int = 0) -> Listing:
    """``small`` random files of 2-8 KB in a few subfolders (one with a non-ASCII name),
    and one of ``large`` bytes (if any); what each path holds."""
    generator = random.Random(small)  # noqa: S311 - sizes, not secrets
    folders = ["images/cats", "images/dogs", "labels", "notes/2024/été"]
    listing: Listing = {}
    for number in range(small):
        path = f"{folders[number % len(folders)]}/{number:05d}.bin"
        listing[path] = write(root / path, os.urandom(generator.randint(2048, 8192)))
    if large:
        listing["big/train.bin"] = write(root / "big/train.bin", os.urandom(large))
    return listing


def write(path: Path, data: bytes) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data), sha256(data)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"folder-upload-{name}.png"), full_page=True)


def add_page(browser: Any, live_server: Any) -> tuple[Any, Any]:
    """A signed-in admin's browser context and its page on the Dataset add page."""
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(f"{live_server.url}{admin_url(Dataset, 'add')}")
    assert page.get_attribute(WIDGET, "data-dual-upload-ready") is not None
    return context, page


def slow_requests(page: Any, latency_ms: int) -> Callable[[], None]:
    """Chromium's emulated latency (DevTools protocol) on every request of ``page``, so
    a test can act while a folder is half sent; returns the function that lifts it."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")

    def conditions(latency: int) -> None:
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": latency,
                "downloadThroughput": -1,
                "uploadThroughput": -1,
            },
        )

    conditions(latency_ms)
    return lambda: conditions(0)


def stored_manifest(store: Store, row: Dataset) -> Listing:
    """What the manifest in the store lists, read as a training worker reads it."""
    data = store.client.get_object(Bucket=store.bucket, Key=row.key)["Body"].read()
    assert sha256(data) == row.sha256  # the row's SHA-256 is the manifest's
    return {e.path: (e.size, e.sha256) for e in read_manifest(data, row.key)}


def recorded(row: Dataset) -> Listing:
    return {f.path: (f.size, f.sha256) for f in DatasetFile.objects.filter(dataset=row)}


def assert_verified_folder(store: Store, row: Dataset, listing: Listing) -> None:
    assert row.status == Dataset.Status.READY, row.status
    assert row.key.endswith(".manifest.json")
    assert (row.file_count, row.size) == (len(listing), sum(s for s, _ in listing.values()))
    assert stored_manifest(store, row) == listing
    assert recorded(row) == listing
    assert len(store.keys_under(row.folder_prefix)) == len(listing)
    # The bucket is shared with other tests: only this folder's uploads are looked at.
    assert not {key for key in store.multipart_keys() if key.startswith(row.folder_prefix)}


@pytest.mark.volume
def test_a_folder_of_2000_files_and_a_large_one_becomes_a_verified_dataset(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    listing = make_folder(tmp_path / "pets", small=2000, large=2 * PART + 4321)
    context, page = add_page(browser, live_server)
    assert page.is_visible("[data-dual-upload-folder-button]")
    started = time.monotonic()
    page.set_input_files(FOLDER_INPUT, str(tmp_path / "pets"))
    assert page.get_attribute("#id_file", "name") is None  # nothing goes through Django
    wait_for_count(page, "filesDone", 500)
    assert page.is_disabled("input[name=_save]")
    shot(page, "01-uploading")
    wait_for_state(page, "verifying", "done", timeout=120)
    sent_in = time.monotonic() - started
    data = widget_data(page)
    assert (data["kind"], data["fileCount"], data["resumed"]) == ("folder", "2001", "false")
    # 2,000 small files PUT whole, the large one in three parts; nothing twice.
    assert data["partCount"] == data["partsSent"] == data["partsUploaded"] == "2003"
    assert (data["partsSkipped"], data["filesDone"]) == ("0", "2001")
    assert page.inner_text("[data-dual-upload-figures]").endswith(" · 2,001 of 2,001 files")
    wait_for_state(page, "done", timeout=120)
    checked_in = time.monotonic() - started
    assert page.inner_text("[data-dual-upload-status]").startswith(
        "Verified 2,001 files (manifest SHA-256 "
    )
    shot(page, "02-verified")
    page.click("input[name=_save]")  # the name is left empty: the folder's
    page.wait_for_url(f"{live_server.url}{changelist(Dataset)}")
    shot(page, "03-listed")
    row = Dataset.objects.get()
    assert (row.pk, row.name) == (int(data["datasetId"]), "pets")
    assert row.uploaded_by == admin_user
    assert_verified_folder(store, row, listing)
    print(  # figures for the report (pytest -s)
        f"\n2,001 files, {row.size:,} bytes: 2,003 PUTs in {sent_in:.1f} s, "
        f"verified after {checked_in:.1f} s"
    )
    context.close()


def test_a_folder_resumes_after_a_network_cut_and_a_reload(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    listing = make_folder(tmp_path / "survey", small=400, large=2 * PART + 99)
    context, page = add_page(browser, live_server)
    page.fill("#id_name", "survey (resumed)")
    quick_retries(page)
    slow = slow_requests(page, 40)  # loopback is fast: the cut comes mid-way
    page.set_input_files(FOLDER_INPUT, str(tmp_path / "survey"))
    wait_for_count(page, "partsUploaded", 80)

    def to_the_store(url: str) -> bool:
        return f"/{store.bucket}/" in url

    page.route(to_the_store, lambda route: route.abort())
    wait_for_state(page, "paused", timeout=60)
    first = widget_data(page)
    assert page.inner_text("[data-dual-upload-status]") == "Paused: network error — press Resume"
    shot(page, "04-paused-network-error")
    session = UploadSession.objects.get(pk=first["sessionId"])
    held = store.keys_under(session.key + "/")
    assert 80 <= len(held) < len(listing), len(held)

    # A reload, the network back, the same folder chosen again: the same session goes on
    # from what the store holds.
    page.unroute(to_the_store)
    slow()
    page.reload()
    page.fill("#id_name", "survey (resumed)")
    page.set_input_files(FOLDER_INPUT, str(tmp_path / "survey"))
    wait_for_state(page, "verifying", "done", timeout=60)
    second = widget_data(page)
    shot(page, "05-resumed")
    assert (second["sessionId"], second["resumed"]) == (first["sessionId"], "true")
    small_held = [key for key in held if "/big/" not in key]
    assert second["storedFiles"] == str(len(small_held))
    sent, skipped = int(second["partsSent"]), int(second["partsSkipped"])
    assert sent < len(listing), second  # fewer PUTs than files: the stored ones were not sent
    assert skipped >= len(small_held) and sent + skipped == int(second["partCount"])
    assert int(second["filesSkipped"]) >= len(small_held)
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}{changelist(Dataset)}")
    row = wait_until_checked(int(second["datasetId"]))
    assert row.name == "survey (resumed)"  # the form's name wins over the folder's
    assert_verified_folder(store, row, listing)
    print(
        f"\nfirst run: {first['partsUploaded']} PUTs accepted before the cut "
        f"({len(held)} objects stored); second run: {sent} PUTs, {skipped} skipped "
        f"of {second['partCount']}"
    )
    context.close()


def test_pause_resume_and_cancel_which_leaves_nothing_under_the_prefix(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    make_folder(tmp_path / "cancelled", small=1000, large=3 * PART)
    context, page = add_page(browser, live_server)
    slow_requests(page, 60)
    page.set_input_files(FOLDER_INPUT, str(tmp_path / "cancelled"))
    wait_for_count(page, "partsUploaded", 20)
    # The store, not the database, is watched while the upload runs (SQLite in memory
    # locks a table for a reader while the live server writes it).
    prefix = widget_data(page)["key"] + "/"
    deadline = time.monotonic() + 30
    while f"{prefix}big/train.bin" not in store.multipart_keys():
        assert time.monotonic() < deadline, "the large file's multipart upload never began"
        time.sleep(0.1)
    assert store.keys_under(prefix)

    # Pause stops the PUTs; Resume asks the store what it holds and goes on from there.
    page.click("[data-dual-upload-pause]")
    wait_for_state(page, "paused", timeout=10)
    paused = widget_data(page)
    page.wait_for_timeout(500)
    assert widget_data(page)["partsSent"] == paused["partsSent"]  # nothing new goes out
    page.click("[data-dual-upload-resume]")
    wait_for_count(page, "storedFiles", 1)
    wait_for_count(page, "partsUploaded", int(paused["partsUploaded"]) + 1)
    assert wait_for_state(page, "uploading") == "uploading"
    shot(page, "06-before-cancel")

    page.click("[data-dual-upload-cancel]")
    wait_for_state(page, "cancelled", timeout=30)
    shot(page, "07-cancelled")
    session = UploadSession.objects.get(key=prefix.rstrip("/"))
    assert session.state == UploadSession.State.ABORTED
    assert UploadedFile.objects.get(session=session, path="big/train.bin").upload_id
    assert store.keys_under(session.key + "/") == []
    assert not {key for key in store.multipart_keys() if key.startswith(session.key + "/")}
    assert not Dataset.objects.exists()
    assert page.get_attribute("#id_file", "name") == "file"
    assert page.input_value(FOLDER_INPUT) == ""
    assert page.input_value(f"{WIDGET} [data-dual-upload-session]") == ""
    assert page.is_enabled("input[name=_save]")
    context.close()


def drop_paths(page: Any, paths: list[Path]) -> None:
    """Drag ``paths`` (files or folders) from the desktop onto the widget and drop them
    (Chromium's DevTools protocol gives the page real entries, folders included)."""
    box = page.locator(WIDGET).bounding_box()
    cdp = page.context.new_cdp_session(page)
    data = {"items": [], "files": [str(path) for path in paths], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        where = {"x": box["x"] + 20, "y": box["y"] + 10}
        cdp.send("Input.dispatchDragEvent", {"type": kind, **where, "data": data})


def test_a_dropped_folder_or_several_dropped_files_go_as_a_folder(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    listing = make_folder(tmp_path / "drop" / "scans", small=30)
    context, page = add_page(browser, live_server)
    drop_paths(page, [tmp_path / "drop" / "scans"])
    wait_for_state(page, "done", timeout=60)
    shot(page, "10-dropped-folder")
    folder = Dataset.objects.get(pk=widget_data(page)["datasetId"])
    assert folder.name == "scans"  # the dropped folder's name; paths are below it
    assert_verified_folder(store, folder, listing)

    # Several files (and a folder) dropped together: one folder of them, paths as dropped.
    loose = [tmp_path / "drop" / "scans" / "labels", tmp_path / "drop" / "scans" / "big"]
    write(loose[1] / "a.bin", os.urandom(PART + 10))  # and one large file, by parts
    page.goto(f"{live_server.url}{admin_url(Dataset, 'add')}")
    extra = write(tmp_path / "readme.txt", b"what the scans are")
    drop_paths(page, [*loose, tmp_path / "readme.txt"])
    wait_for_state(page, "done", timeout=60)
    data = widget_data(page)
    several = Dataset.objects.get(pk=data["datasetId"])
    assert several.name == "dropped-files"
    expected = {path: info for path, info in listing.items() if path.startswith("labels/")}
    expected["big/a.bin"] = (PART + 10, sha256((loose[1] / "a.bin").read_bytes()))
    expected["readme.txt"] = extra
    assert (data["partCount"], data["partsSent"]) == (str(len(expected) + 1),) * 2
    assert_verified_folder(store, several, expected)
    context.close()


def test_a_small_file_whose_answer_was_lost_is_done_when_the_store_says_412(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    """The first PUT reaches the store but its answer is lost (the network fails after
    the store wrote the file): the retry meets If-None-Match: * and the 412 says the
    store holds the file, so it counts as done, not as a failure."""
    listing = make_folder(tmp_path / "lossy", small=12)
    context, page = add_page(browser, live_server)
    quick_retries(page)
    lost: list[int] = []

    def lose_the_first_answer(route: Any) -> None:
        request = route.request
        if request.method != "PUT" or lost:
            route.continue_()
            return
        path = unquote(urlsplit(request.url).path).split("/lossy/", 1)[1]
        signed = {
            name: value
            for name, value in request.headers.items()
            if name.startswith("x-amz-") or name in ("content-type", "if-none-match")
        }
        data = (tmp_path / "lossy" / path).read_bytes()
        lost.append(requests.put(request.url, data=data, headers=signed, timeout=30).status_code)
        route.abort()  # the browser sees a network error

    page.route(lambda url: f"/{store.bucket}/" in url, lose_the_first_answer)
    page.set_input_files(FOLDER_INPUT, str(tmp_path / "lossy"))
    wait_for_state(page, "done", timeout=60)
    data = widget_data(page)
    assert lost == [200]
    assert (data["partsSent"], data["partsUploaded"], data["partsSkipped"]) == ("13", "11", "1")
    assert data["filesDone"] == "12"
    assert_verified_folder(store, Dataset.objects.get(pk=data["datasetId"]), listing)
    context.close()


def test_a_path_the_server_refuses_is_shown_in_its_words(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    """The script refuses nothing itself: a name the server refuses (here one with a
    right-to-left override, which disguises "txt.exe" as "exe.txt") is named by it."""
    write(tmp_path / "odd" / "fine.txt", b"fine")
    write(tmp_path / "odd" / "invoice\u202etxt.exe", b"refused")
    context, page = add_page(browser, live_server)
    page.set_input_files(FOLDER_INPUT, str(tmp_path / "odd"))
    wait_for_state(page, "error", timeout=30)
    status = page.inner_text("[data-dual-upload-status]")
    assert status.startswith("File 1 ('invoice\\u202etxt.exe') cannot be stored: ")  # repr()
    assert "it contains an invisible format character (U+202E)" in status
    shot(page, "08-refused-path")
    assert not UploadSession.objects.exists()
    context.close()


def test_a_users_form_takes_a_folder(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    listing = make_folder(tmp_path / "run-data", small=40, large=PART + 1)
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(f"{live_server.url}{reverse('start-run')}")
    page.fill("#id_name", "run 9")
    page.set_input_files(FOLDER_INPUT, str(tmp_path / "run-data"))
    wait_for_state(page, "done", timeout=60)
    data = widget_data(page)
    shot(page, "09-users-form")
    with page.expect_navigation():
        page.click("button[type=submit]")
    answer = json.loads(page.inner_text("body"))
    assert answer == {"run": "run 9", "dataset": int(data["datasetId"])}
    row = wait_until_checked(answer["dataset"])
    assert (row.name, row.uploaded_by) == ("run-data", admin_user)
    assert_verified_folder(store, row, listing)
    context.close()
