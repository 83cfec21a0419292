"""Folder datasets on the real servers: a browser (``requests``) uploads a folder of small
files (presigned ``PUT``s signed in batches) and a large one (multipart); the server
reads everything back, writes the manifest beside the files and records every file; the
paged API hands out presigned GETs; ``download_dataset`` fetches and verifies it all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import IntegrityError
from dual_storage_app.manifests import read_manifest
from dual_storage_app.models import Dataset, DatasetFile
from dual_storage_app.uploads.checking import check_upload
from dual_storage_app.uploads.session import UploadSession
from tests.browser_uploads import PART, Browser, b64sha, browser_of, multipart_ids, put, stored

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


@pytest.fixture
def browser(public_endpoint: str, settings: SettingsWrapper, django_user_model: Any) -> Browser:
    settings.DUAL_STORAGE_UPLOADS = {"PART_BYTES": PART, "SIGN_BATCH": 25}
    return browser_of(django_user_model)


def a_folder(count: int = 60) -> dict[str, bytes]:
    """Small files in nested folders (one empty, one with a non-ASCII name) and one
    file of two and a bit parts."""
    files = {f"images/{i:03d}.jpg": os.urandom(i * 97) for i in range(count)}
    files["labels/été.json"] = json.dumps({"cat": 1}).encode()
    files["big/train.bin"] = os.urandom(2 * PART + 333)
    return files


def start(browser: Browser, files: dict[str, bytes], name: str = "pets") -> dict[str, Any]:
    status, session = browser.call(
        reverse("dual_storage_app:upload-start-folder"),
        {"name": name, "files": [{"path": p, "size": len(d)} for p, d in files.items()]},
    )
    assert status in (200, 201), session
    return session


def send(
    browser: Browser, session: dict[str, Any], files: dict[str, bytes], only: set[str] | None = None
) -> int:
    """Sign in batches and ``PUT`` every file (or those in ``only``); how many PUTs."""
    size = session["part_size"]
    paths = list(files)
    whole = [
        {"index": i, "sha256": b64sha(files[p])}
        for i, p in enumerate(paths)
        if len(files[p]) <= size and (only is None or p in only)
    ]
    parts = [
        {"file": i, "number": n, "sha256": b64sha(files[p][(n - 1) * size : n * size])}
        for i, p in enumerate(paths)
        if len(files[p]) > size and (only is None or p in only)
        for n in range(1, -(-len(files[p]) // size) + 1)
    ]
    sent = 0
    for batch_start in range(0, len(whole) + len(parts), 25):
        chunk = (whole + parts)[batch_start : batch_start + 25]
        status, signed = browser.call(
            session["urls"]["sign"],
            {
                "files": [e for e in chunk if "index" in e],
                "parts": [e for e in chunk if "file" in e],
            },
        )
        assert status == 200, signed
        for entry in signed["files"]:
            data = files[paths[entry["index"]]]
            assert put(entry["url"], data, entry["headers"]).status_code == 200
            sent += 1
        for entry in signed["parts"]:
            data = files[paths[entry["file"]]]
            piece = data[(entry["number"] - 1) * size : entry["number"] * size]
            assert put(entry["url"], piece, entry["headers"]).status_code == 200
            sent += 1
    return sent


def test_a_folder_becomes_a_verified_dataset_with_a_manifest(
    browser: Browser, direct: DualStorageClient, tmp_path: Path, s3_servers: Any
) -> None:
    files = a_folder()
    session = start(browser, files)
    assert session["kind"] == "folder" and session["part_count"] == len(files)
    assert send(browser, session, files) == len(files) - 1 + 3  # the big file is 3 parts
    status, done = browser.call(session["urls"]["complete"], {})
    assert status == 200, done
    dataset = Dataset.objects.get(pk=done["dataset"]["id"])
    assert (dataset.status, dataset.file_count, dataset.size) == (
        "verifying",
        len(files),
        sum(map(len, files.values())),
    )
    assert check_upload(session["id"]) == "ready"
    dataset.refresh_from_db()
    store, bucket = direct.locate("datasets")
    manifest = store.get_bytes(bucket, dataset.key)
    assert dataset.key.endswith(".manifest.json") and dataset.status == "ready"
    assert dataset.sha256 == hashlib.sha256(manifest).hexdigest()
    listed = {e.path: (e.size, e.sha256) for e in read_manifest(manifest, dataset.key)}
    assert listed == {p: (len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()}
    rows = {f.path: f.sha256 for f in DatasetFile.objects.filter(dataset=dataset)}
    assert rows == {p: sha for p, (_, sha) in listed.items()}
    assert stored(direct, dataset.folder_prefix + "labels/été.json") == files["labels/été.json"]
    assert not multipart_ids(s3_servers, bucket) & {
        UploadSession.objects.get(pk=session["id"]).files.get(path="big/train.bin").upload_id
    }

    # download_dataset: every file, verified against the manifest, under the directory.
    result = direct.download_dataset(dataset.key, tmp_path / "pets")
    assert result.size == dataset.size
    for path, data in files.items():
        assert (tmp_path / "pets" / path).read_bytes() == data
    assert not list((tmp_path / "pets").rglob("*.part"))


def test_the_files_api_pages_presigned_links(
    browser: Browser, django_user_model: Any, public_endpoint: str
) -> None:
    files = a_folder(count=30)
    session = start(browser, files)
    send(browser, session, files)
    _, done = browser.call(session["urls"]["complete"], {})
    url = reverse("dual_storage_app:dataset-files", kwargs={"pk": done["dataset"]["id"]})
    viewer = Client()
    user = django_user_model.objects.create_user(username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_dataset"))
    viewer.force_login(user)
    verifying = viewer.get(url)
    assert verifying.status_code == 409 and "being verified" in verifying.json()["error"]
    check_upload(session["id"])
    seen: dict[str, bytes] = {}
    page: Any = viewer.get(url, {"limit": 10}).json()
    pages = 1
    while True:
        for entry in page["files"]:
            assert entry["url"].startswith(f"{public_endpoint}/")
            answer = requests.get(entry["url"], timeout=30)
            assert hashlib.sha256(answer.content).hexdigest() == entry["sha256"]
            assert answer.headers["Content-Disposition"].startswith("attachment")
            seen[entry["path"]] = answer.content
        if page["next"] is None:
            break
        page = viewer.get(page["next"]).json()
        pages += 1
    assert seen == files and pages == 4  # 32 files, 10 a page
    assert Client().get(url).status_code == 302  # anonymous: to the login page
    nobody = django_user_model.objects.create_user(username="nobody")
    other = Client()
    other.force_login(nobody)
    assert other.get(url).status_code == 403
    assert viewer.get(url, {"limit": 1001}).status_code == 400


def test_the_same_folder_again_resumes(browser: Browser) -> None:
    files = a_folder(count=20)
    session = start(browser, files)
    half = set(list(files)[:10]) | {"big/train.bin"}
    send(browser, session, files, only=half)
    again = start(browser, files)
    assert again["id"] == session["id"] and again["resumed"] is True
    status, held = browser.call(again["urls"]["parts"])
    paths = list(files)
    done = {paths[f["index"]] for f in held["files"] if f["done"]}
    assert done == half - {"big/train.bin"}
    big = next(f for f in held["files"] if paths[f["index"]] == "big/train.bin")
    assert [p["number"] for p in big["parts"]] == [1, 2, 3]
    send(browser, again, files, only=set(files) - half)
    status, answer = browser.call(again["urls"]["complete"], {})
    assert status == 200, answer
    assert check_upload(again["id"]) == "ready"


def test_a_folder_with_a_file_missing_or_short_publishes_nothing(
    browser: Browser, direct: DualStorageClient
) -> None:
    files = a_folder(count=10)
    session = start(browser, files)
    send(browser, session, files, only=set(files) - {"images/003.jpg", "big/train.bin"})
    status, answer = browser.call(session["urls"]["complete"], {})
    assert status == 409
    assert "'images/003.jpg' is missing" in answer["error"]
    assert "'big/train.bin': part 1 is missing" in answer["error"]
    assert not Dataset.objects.exists()
    store, bucket = direct.locate("datasets")
    assert not store.exists(bucket, session["key"] + ".manifest.json")


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ([{"path": "../etc/passwd", "size": 1}], "has a '..' segment"),
        ([{"path": "/abs", "size": 1}], "starts with '/'"),
        ([{"path": "a", "size": 1}, {"path": "a", "size": 2}], "'a' is in the list twice"),
        ([{"path": "a", "size": -1}], "cannot be negative"),
        ([], "non-empty list"),
    ],
)
def test_bad_file_lists_are_refused_by_name(browser: Browser, files: Any, error: str) -> None:
    status, answer = browser.call(
        reverse("dual_storage_app:upload-start-folder"), {"name": "x", "files": files}
    )
    assert status == 400 and error in answer["error"]
    assert not UploadSession.objects.exists()


def test_a_small_file_is_put_once_and_never_replaced(browser: Browser) -> None:
    files = {"a.txt": b"first"}
    session = start(browser, files)
    _, signed = browser.call(
        session["urls"]["sign"], {"files": [{"index": 0, "sha256": b64sha(b"first")}]}
    )
    entry = signed["files"][0]
    assert put(entry["url"], b"first", entry["headers"]).status_code == 200
    assert put(entry["url"], b"first", entry["headers"]).status_code == 412  # If-None-Match
    damaged = put(entry["url"], b"fIrst", entry["headers"])
    assert damaged.status_code in (400, 412)


def test_cancel_removes_every_file_and_part(
    browser: Browser, direct: DualStorageClient, s3_servers: Any
) -> None:
    files = a_folder(count=5)
    session = start(browser, files)
    send(browser, session, files)
    store, bucket = direct.locate("datasets")
    assert list(store.list(bucket, session["key"] + "/"))
    status, answer = browser.call(session["urls"]["abort"], {})
    assert (status, answer["state"]) == (200, "aborted")
    assert list(store.list(bucket, session["key"] + "/")) == []
    big = UploadSession.objects.get(pk=session["id"]).files.get(path="big/train.bin")
    assert big.upload_id not in multipart_ids(s3_servers, bucket)


def test_a_folder_whose_bytes_are_not_as_signed_is_corrupt(
    browser: Browser, direct: DualStorageClient
) -> None:
    files = a_folder(count=5)
    session = start(browser, files)
    send(browser, session, files)
    _, done = browser.call(session["urls"]["complete"], {})
    upload = UploadSession.objects.get(pk=session["id"]).files.get(path="images/002.jpg")
    upload.checksums = {"1": b64sha(b"not these bytes")}
    upload.save()
    assert check_upload(session["id"]) == "corrupt"
    dataset = Dataset.objects.get(pk=done["dataset"]["id"])
    store, bucket = direct.locate("datasets")
    assert not store.exists(bucket, dataset.key)  # no manifest for bytes not as sent
    assert not DatasetFile.objects.filter(dataset=dataset).exists()


def test_a_hostile_manifest_cannot_write_outside_the_destination(
    direct: DualStorageClient, tmp_path: Path
) -> None:
    store, bucket = direct.locate("datasets")
    manifest = {
        "format": "dual-storage-manifest/1",
        "files": [{"path": "../../escape", "size": 1, "sha256": "0" * 64}],
    }
    key = "test/hostile.manifest.json"
    store.upload(bucket, key, __import__("io").BytesIO(json.dumps(manifest).encode()))
    with pytest.raises(IntegrityError, match="not a dataset manifest"):
        direct.download_dataset(key, tmp_path / "out")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out").exists()


def test_no_link_anywhere_before_the_check_and_accept_marks_corrupt_ready(
    browser: Browser, admin_client: Client
) -> None:
    """The view, the admin's presign action and the files API refuse a verifying or
    corrupt dataset; the admin's *Accept the stored content* makes a corrupt one ready."""
    data = os.urandom(1000)
    session = browser.send_all(data)
    _, done = browser.complete(session, data)
    dataset = Dataset.objects.get(pk=done["dataset"]["id"])
    link = reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk})
    answer = admin_client.get(link)
    assert answer.status_code == 409 and b"still being verified" in answer.content
    changelist = reverse("admin:dual_storage_app_dataset_changelist")
    presign = {"action": "create_presigned_links", "_selected_action": [dataset.pk]}
    page = admin_client.post(changelist, {**presign, "expires": "60", "apply": "1"}, follow=True)
    shown = [str(m) for m in page.context["messages"]]
    assert any("still being verified" in m for m in shown) and page.context["links"] == []
    listed = admin_client.get(changelist, {"status__exact": "verifying"}).content.decode()
    assert dataset.name in listed and "one object" in listed

    row = UploadSession.objects.get(pk=session["id"])
    row.checksums = {"1": b64sha(b"other bytes")}
    row.save()
    assert check_upload(session["id"]) == "corrupt"
    answer = admin_client.get(link)
    assert answer.status_code == 409 and b"is corrupt" in answer.content
    accept = {"action": "accept_stored_content", "_selected_action": [dataset.pk]}
    admin_client.post(changelist, accept, follow=True)
    dataset.refresh_from_db()
    assert (dataset.status, dataset.sha256) == ("ready", hashlib.sha256(data).hexdigest())
    assert admin_client.get(link).status_code == 302


def test_the_download_command_fetches_a_folder_and_refuses_an_unchecked_one(
    browser: Browser, tmp_path: Path, direct: DualStorageClient
) -> None:
    files = a_folder(count=12)
    session = start(browser, files)
    send(browser, session, files)
    _, done = browser.call(session["urls"]["complete"], {})
    pk = str(done["dataset"]["id"])
    with pytest.raises(CommandError, match="still being verified"):
        call_command("dualstorage_download", "datasets", "--id", pk, str(tmp_path / "early"))
    assert not (tmp_path / "early").exists()
    check_upload(session["id"])
    out = io.StringIO()
    call_command(
        "dualstorage_download", "datasets", "--id", pk, str(tmp_path / "d"), "--json", stdout=out
    )
    report = json.loads(out.getvalue())
    assert report["files"] == len(files) and report["size"] == sum(map(len, files.values()))
    assert {p: (tmp_path / "d" / p).read_bytes() for p in files} == files
    # A manifest changed after the row recorded it is refused before any file is written.
    dataset = Dataset.objects.get(pk=pk)
    store, bucket = direct.locate("datasets")
    store.delete(bucket, dataset.key)
    store.put_bytes(bucket, dataset.key, b"{}")
    with pytest.raises(CommandError, match="recorded"):
        call_command("dualstorage_download", "datasets", "--id", pk, str(tmp_path / "late"))
    assert not (tmp_path / "late").exists()


def verify(*options: str) -> tuple[bool, dict[str, Any]]:
    """``dualstorage_verify --kind datasets --json``: whether it passed, and its report."""
    out = io.StringIO()
    try:
        call_command("dualstorage_verify", "--kind", "datasets", "--json", *options, stdout=out)
    except CommandError:
        return False, json.loads(out.getvalue())
    return True, json.loads(out.getvalue())


def test_verify_checks_every_file_of_a_folder_and_adopt_leaves_them_alone(
    browser: Browser, direct: DualStorageClient
) -> None:
    files = a_folder(count=8)
    session = start(browser, files)
    send(browser, session, files)
    # A folder upload in progress: its files are neither orphans nor datasets to adopt
    # (the bucket is shared with other tests: only this upload's keys are looked at).
    _, report = verify("--orphans")
    assert report["checked"] == 0  # no row yet
    assert not [p for p in report["problems"] if p["key"].startswith(session["key"])]
    out = io.StringIO()
    call_command("dualstorage_adopt", "--kind", "datasets", "--dry-run", "--json", stdout=out)
    adopted = json.loads(out.getvalue())
    assert adopted["skipped"] and not [
        a for a in adopted["adopted"] if a["key"].startswith(session["key"])
    ]
    _, done = browser.call(session["urls"]["complete"], {})
    check_upload(session["id"])
    _, report = verify("--orphans")
    assert report["checked"] == 1
    assert not [p for p in report["problems"] if p["key"].startswith(session["key"])]

    dataset = Dataset.objects.get(pk=done["dataset"]["id"])
    store, bucket = direct.locate("datasets")
    store.delete(bucket, dataset.folder_prefix + "images/003.jpg")
    store.delete(bucket, dataset.folder_prefix + "images/005.jpg")
    store.put_bytes(bucket, dataset.folder_prefix + "images/005.jpg", b"x" * 485)  # same size
    ok, report = verify()
    assert not ok
    assert report["problems"][0]["problem"] == "1 of its 10 files missing: images/003.jpg"
    store.put_bytes(bucket, dataset.folder_prefix + "images/003.jpg", files["images/003.jpg"])
    ok, report = verify()
    assert report["problems"][0]["problem"] == "1 of its 10 files changed: images/005.jpg"
    ok, report = verify("--quick")  # sizes only: the same size passes a quick check
    assert ok, report
    store.delete(bucket, dataset.folder_prefix + "labels/été.json")
    ok, report = verify("--quick")
    assert "labels/été.json" in report["problems"][0]["problem"]


def test_verify_leaves_a_dataset_being_checked_alone(browser: Browser) -> None:
    data = os.urandom(200)
    session = browser.send_all(data)
    browser.complete(session, data)
    ok, report = verify()
    assert ok and report["checked"] == 1


def test_deleting_a_folder_dataset_deletes_its_files_after_the_commit(
    browser: Browser, direct: DualStorageClient, django_capture_on_commit_callbacks: Any
) -> None:
    files = a_folder(count=4)
    session = start(browser, files)
    send(browser, session, files)
    _, done = browser.call(session["urls"]["complete"], {})
    check_upload(session["id"])
    dataset = Dataset.objects.get(pk=done["dataset"]["id"])
    store, bucket = direct.locate("datasets")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        dataset.delete()
    assert len(list(store.list(bucket, dataset.folder_prefix))) == len(files)  # not yet
    for callback in callbacks:
        callback()
    assert list(store.list(bucket, dataset.folder_prefix)) == []
    assert not store.exists(bucket, dataset.key)


def test_a_folder_list_beyond_djangos_form_limit_is_taken(browser: Browser) -> None:
    """40,000 paths are ~3 MB of JSON, over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5
    MiB, meant for form data) and our 2 MiB for other requests: a folder's start is
    read from the stream, up to 64 MiB."""
    files = [
        {"path": f"images/{i:06d}/a-longer-file-name-{i}.jpg", "size": 0} for i in range(40_000)
    ]
    body = json.dumps({"name": "many", "files": files})
    assert len(body) > 2_621_440
    response = browser.client.post(
        reverse("dual_storage_app:upload-start-folder"), body, content_type="application/json"
    )
    assert response.status_code == 201, response.content[:300]
    assert UploadSession.objects.get(pk=response.json()["id"]).files.count() == 40_000


def test_cancel_aborts_every_multipart_upload_under_the_folder(
    browser: Browser, direct: DualStorageClient, s3_servers: Any
) -> None:
    """Even one whose id a sign request had not recorded yet (the race with cancel)."""
    files = a_folder(count=2)
    session = start(browser, files)
    _, bucket = direct.locate("datasets")
    stray = (
        s3_servers["external"]
        .client()
        .create_multipart_upload(Bucket=bucket, Key=session["key"] + "/big/train.bin")["UploadId"]
    )
    assert browser.call(session["urls"]["abort"], {})[0] == 200
    assert stray not in multipart_ids(s3_servers, bucket)
    status, answer = browser.call(
        session["urls"]["sign"], {"files": [{"index": 0, "sha256": b64sha(b"")}]}
    )
    assert status == 409 and "cancelled" in answer["error"]
