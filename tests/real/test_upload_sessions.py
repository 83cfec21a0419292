"""Browser uploads' JSON API on the real servers, with ``requests`` playing the browser:
parts go straight to the external store with the URLs the server signed.

A browser that lies (a missing part, a wrong size, a forged or foreign session, a key of
its choosing) is refused and nothing is published; the row's SHA-256 is the file's, read
back by the server; cancel and expiry leave no multipart upload behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from datetime import timedelta
from importlib.util import find_spec
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import ConfigurationError
from dual_storage_app.models import Dataset
from dual_storage_app.uploads.checking import check_unfinished, check_upload
from dual_storage_app.uploads.limits import upload_limits
from dual_storage_app.uploads.session import UploadSession
from tests.browser_uploads import PART, Browser, b64sha, browser_of, multipart_ids, stored

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db]


@pytest.fixture
def browser(public_endpoint: str, settings: SettingsWrapper, django_user_model: Any) -> Browser:
    settings.DUAL_STORAGE_UPLOADS = {"PART_BYTES": PART}
    return browser_of(django_user_model)


def test_a_file_goes_to_the_store_and_its_row_has_the_files_sha256(
    browser: Browser, direct: DualStorageClient, public_endpoint: str, s3_servers: Any
) -> None:
    data = os.urandom(2 * PART + 12345)
    session = browser.send_all(data, description="cats and dogs")
    assert session["part_count"] == 3 and session["part_size"] == PART
    # The signed URLs point at the external store's public endpoint, nothing else.
    status, signed = browser.call(
        session["urls"]["sign"], {"parts": [{"number": 1, "sha256": b64sha(data[:PART])}]}
    )
    assert signed["parts"][0]["url"].startswith(f"{public_endpoint}/")
    assert s3_servers["internal"].endpoint_url not in json.dumps(signed)

    status, parts = browser.call(session["urls"]["parts"])
    assert status == 200
    assert [(p["number"], p["size"]) for p in parts["parts"]] == [
        (1, PART),
        (2, PART),
        (3, 12345),
    ]
    assert parts["parts"][2]["sha256"] == b64sha(data[2 * PART :])

    status, done = browser.complete(session, data)
    assert status == 200, done
    row = Dataset.objects.get(pk=done["dataset"]["id"])
    assert (row.status, row.sha256, row.size) == ("verifying", "", len(data))
    assert row.description == "cats and dogs" and row.name == "train.tar"
    assert check_upload(session["id"]) == "ready"
    row.refresh_from_db()
    assert (row.status, row.sha256) == ("ready", hashlib.sha256(data).hexdigest())
    assert stored(direct, row.key) == data
    store, bucket = direct.locate("datasets")
    assert store.recorded_sha256(bucket, row.key) == row.sha256
    assert session["id"] not in multipart_ids(s3_servers, bucket)
    # A repeated complete (its answer was lost) gives the same dataset, not a second one.
    status, again = browser.complete(session)
    assert (status, again["dataset"]["id"]) == (200, row.pk)
    assert Dataset.objects.filter(file=row.key).count() == 1


def test_the_same_file_again_resumes_from_the_parts_the_store_holds(
    browser: Browser,
) -> None:
    data = os.urandom(2 * PART + 10)
    first = browser.start(data, last_modified=1700000000000)
    assert browser.put_parts(first, data, [1]) == [200]
    again = browser.start(data, last_modified=1700000000000)
    assert again["id"] == first["id"] and again["resumed"] is True
    status, parts = browser.call(again["urls"]["parts"])
    assert [(p["number"], p["sha256"]) for p in parts["parts"]] == [(1, b64sha(data[:PART]))]
    # Another file (another modification time) is another upload.
    other = browser.start(data, last_modified=1700000000001)
    assert other["id"] != first["id"] and other["resumed"] is False
    assert browser.put_parts(again, data, [2, 3]) == [200, 200]
    status, done = browser.complete(again, data)
    assert status == 200, done
    assert check_upload(again["id"]) == "ready"
    assert Dataset.objects.get(pk=done["dataset"]["id"]).sha256 == hashlib.sha256(data).hexdigest()


def test_a_part_damaged_on_the_way_is_refused_by_the_store(browser: Browser) -> None:
    """SeaweedFS checks ``x-amz-checksum-sha256`` against the bytes (BadDigest)."""
    data = os.urandom(PART + 100)
    session = browser.start(data)
    _, signed = browser.call(
        session["urls"]["sign"], {"parts": [{"number": 1, "sha256": b64sha(data[:PART])}]}
    )
    damaged = bytearray(data[:PART])
    damaged[1000] ^= 1
    answer = requests.put(
        signed["parts"][0]["url"],
        data=bytes(damaged),
        headers=signed["parts"][0]["headers"],
        timeout=30,
    )
    assert answer.status_code == 400 and "BadDigest" in answer.text
    # Without the checksum header the signature no longer matches: it cannot be skipped.
    answer = requests.put(signed["parts"][0]["url"], data=bytes(damaged), timeout=30)
    assert answer.status_code == 403
    _status, parts = browser.call(session["urls"]["parts"])
    assert parts["parts"] == []


@pytest.mark.parametrize("lie", ["missing part", "short part", "claimed list", "unsigned"])
def test_a_browser_that_lies_publishes_nothing(
    lie: str, browser: Browser, direct: DualStorageClient
) -> None:
    data = os.urandom(2 * PART + 7)
    session = browser.start(data)
    if lie == "missing part":
        browser.put_parts(session, data, [1, 3])
    elif lie == "short part":  # part 1 is one byte short of its size
        browser.put_parts(session, data, [1], chunks={1: data[: PART - 1]})
        browser.put_parts(session, data, [2, 3])
    else:
        browser.put_parts(session, data, [1, 2, 3])
    claimed = None
    if lie == "claimed list":  # the browser's list says part 2 holds other bytes
        claimed = [
            {"number": 1, "sha256": b64sha(data[:PART])},
            {"number": 2, "sha256": b64sha(b"other")},
            {"number": 3, "sha256": b64sha(data[2 * PART :])},
        ]
    if lie == "unsigned":  # a list that leaves a part out
        claimed = [{"number": 1, "sha256": b64sha(data[:PART])}]
    status, answer = browser.call(
        session["urls"]["complete"], {} if claimed is None else {"parts": claimed}
    )
    assert status == 409, answer
    expected = {
        "missing part": "part 2 is missing",
        "short part": f"part 1 is {PART - 1:,} bytes, not {PART:,}",
        "claimed list": "part 2 was signed for other bytes",
        "unsigned": "part 2 is not in the list sent",
    }[lie]
    assert expected in answer["error"]
    assert stored(direct, session["key"]) is None
    assert not Dataset.objects.filter(file=session["key"]).exists()
    assert UploadSession.objects.get(pk=session["id"]).state == "active"  # can still finish


def test_forged_and_foreign_sessions_are_unknown(browser: Browser, django_user_model: Any) -> None:
    data = os.urandom(100)
    session = browser.start(data)
    other = browser_of(django_user_model)
    for url in session["urls"].values():
        body: dict[str, Any] | None = (
            None if url.endswith(f"{session['id']}/") or url.endswith("parts/") else {}
        )
        assert other.call(url, body)[0] == 404
    forged = session["urls"]["sign"].replace(session["id"], str(uuid.uuid4()))
    assert browser.call(forged, {"parts": []})[0] == 404
    not_an_id = session["urls"]["sign"].replace(session["id"], "nope")
    assert browser.client.post(not_an_id, "{}", content_type="application/json").status_code == 404


def test_the_server_chooses_the_bucket_and_the_key(
    browser: Browser, direct: DualStorageClient, s3_servers: Any
) -> None:
    """The key is ``datasets/<random>/<cleaned name>`` in the datasets bucket, whatever
    the browser asks for; a signed URL cannot be turned to another key."""
    data = os.urandom(1000)
    session = browser.start(
        data, name="../../internal/weights/x.pth", bucket="dual-internal", key="weights/x"
    )
    _store, bucket = direct.locate("datasets")
    assert session["key"].startswith("datasets/") and session["key"].endswith("/x.pth")
    assert UploadSession.objects.get(pk=session["id"]).bucket == bucket
    _status, signed = browser.call(
        session["urls"]["sign"], {"parts": [{"number": 1, "sha256": b64sha(data)}]}
    )
    url = signed["parts"][0]["url"].replace(session["key"], "datasets/elsewhere.bin")
    answer = requests.put(url, data=data, headers=signed["parts"][0]["headers"], timeout=30)
    assert answer.status_code == 403
    assert s3_servers["internal"].endpoint_url not in json.dumps(session)


def test_permission_and_sign_in_are_required(public_endpoint: str, django_user_model: Any) -> None:
    start = reverse("dual_storage_app:upload-start")
    body = json.dumps({"name": "a", "size": 1})
    assert Client().post(start, body, content_type="application/json").status_code == 401
    viewer = browser_of(django_user_model, perms=("view_dataset",))
    status, answer = viewer.call(start, {"name": "a", "size": 1})
    assert (status, answer["error"]) == (403, "You may not add datasets.")
    assert not UploadSession.objects.exists()


def test_csrf_is_required(public_endpoint: str, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user(username="csrf", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="add_dataset"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        reverse("dual_storage_app:upload-start"),
        json.dumps({"name": "a", "size": 1}),
        content_type="application/json",
    )
    assert response.status_code == 403 and not UploadSession.objects.exists()


def test_sizes_and_bad_requests_are_refused_by_name(
    browser: Browser, settings: SettingsWrapper
) -> None:
    start = reverse("dual_storage_app:upload-start")
    settings.DUAL_STORAGE_UPLOADS = {"MAX_BYTES": 1000}
    status, answer = browser.call(start, {"name": "big.bin", "size": 1001})
    assert status == 413 and "up to 1,000 bytes" in answer["error"]
    assert browser.call(start, {"name": "", "size": 1})[1]["error"].startswith("name is required")
    assert "whole number" in browser.call(start, {"name": "a", "size": "1"})[1]["error"]
    session = browser.start(b"x" * 10)
    status, answer = browser.call(
        session["urls"]["sign"], {"parts": [{"number": 2, "sha256": b64sha(b"x")}]}
    )
    assert status == 400 and "parts 1 to 1" in answer["error"]
    status, answer = browser.call(
        session["urls"]["sign"], {"parts": [{"number": 1, "sha256": "abc"}]}
    )
    assert status == 400 and "not a SHA-256 digest" in answer["error"]
    response = browser.client.post(
        session["urls"]["sign"], "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and "not JSON" in response.json()["error"]


def test_cancel_aborts_the_multipart_upload(
    browser: Browser, direct: DualStorageClient, s3_servers: Any
) -> None:
    data = os.urandom(PART + 1)
    session = browser.start(data)
    browser.put_parts(session, data, [1])
    _, bucket = direct.locate("datasets")
    upload_id = UploadSession.objects.get(pk=session["id"]).upload_id
    assert upload_id in multipart_ids(s3_servers, bucket)
    assert browser.call(session["urls"]["abort"], {}) == (
        200,
        {"id": session["id"], "state": "aborted"},
    )
    assert upload_id not in multipart_ids(s3_servers, bucket)
    status, answer = browser.call(
        session["urls"]["sign"], {"parts": [{"number": 1, "sha256": b64sha(b"")}]}
    )
    assert status == 409 and "cancelled" in answer["error"]
    assert stored(direct, session["key"]) is None


def test_expired_sessions_are_aborted_by_the_cleanup_command(
    browser: Browser, direct: DualStorageClient, s3_servers: Any
) -> None:
    data = os.urandom(PART + 1)
    expired, live = browser.start(data, last_modified=1), browser.start(data, last_modified=2)
    for session in (expired, live):
        browser.put_parts(session, data, [1])
    UploadSession.objects.filter(pk=expired["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    status, answer = browser.call(
        expired["urls"]["sign"], {"parts": [{"number": 2, "sha256": b64sha(b"")}]}
    )
    assert status == 410 and "expired" in answer["error"]
    _, bucket = direct.locate("datasets")
    ids = {s["id"]: UploadSession.objects.get(pk=s["id"]).upload_id for s in (expired, live)}
    # Even --older-than 0 keeps a live browser upload: it is resumable until it expires.
    report = io.StringIO()
    call_command("dualstorage_cleanup_uploads", "--older-than", "0", "--json", stdout=report)
    assert json.loads(report.getvalue())["expired_sessions"] == [expired["id"]]
    left = multipart_ids(s3_servers, bucket)
    assert ids[expired["id"]] not in left and ids[live["id"]] in left
    assert UploadSession.objects.get(pk=expired["id"]).state == "expired"
    assert UploadSession.objects.get(pk=live["id"]).state == "active"


def test_a_taken_key_is_never_replaced(
    browser: Browser, direct: DualStorageClient, s3_servers: Any
) -> None:
    data = os.urandom(1000)
    session = browser.send_all(data)
    store, bucket = direct.locate("datasets")
    store.put_bytes(bucket, session["key"], b"someone else's")
    status, answer = browser.complete(session, data)
    assert status == 409 and "already taken" in answer["error"]
    assert stored(direct, session["key"]) == b"someone else's"
    assert not Dataset.objects.filter(file=session["key"]).exists()
    assert UploadSession.objects.get(pk=session["id"]).upload_id not in multipart_ids(
        s3_servers, bucket
    )


def test_parts_not_as_signed_mark_the_dataset_corrupt(browser: Browser) -> None:
    """A store that does not check part checksums (GCS) could keep damaged bytes: the
    server's read-back compares every part with the checksum it signed."""
    data = os.urandom(PART + 50)
    session = browser.send_all(data)
    status, done = browser.complete(session, data)
    assert status == 200
    row = UploadSession.objects.get(pk=session["id"])
    row.checksums["2"] = b64sha(b"what the browser said it sent")
    row.save(update_fields=["checksums"])
    assert check_upload(session["id"]) == "corrupt"
    dataset = Dataset.objects.get(pk=done["dataset"]["id"])
    assert dataset.status == "corrupt"


def test_an_empty_file_uploads(browser: Browser) -> None:
    session = browser.send_all(b"")
    status, done = browser.complete(session, b"")
    assert status == 200, done
    assert check_upload(session["id"]) == "ready"
    assert Dataset.objects.get(pk=done["dataset"]["id"]).sha256 == hashlib.sha256().hexdigest()


def test_a_check_that_never_ran_is_run_by_the_cleanup(browser: Browser) -> None:
    data = os.urandom(300)
    session = browser.send_all(data)
    browser.complete(session, data)  # in a test transaction: no commit, no thread
    UploadSession.objects.filter(pk=session["id"]).update(
        check_lease=timezone.now() - timedelta(seconds=1)  # a dead process's lease
    )
    assert check_unfinished() == {"ready": 1}
    assert check_unfinished() == {}


@pytest.mark.skipif(
    find_spec("django_tasks_db") is None, reason="the database task backend is not installed"
)
@pytest.mark.django_db(transaction=True)
def test_the_check_can_run_on_a_task_worker(
    browser: Browser, settings: SettingsWrapper, keep_signals: None
) -> None:
    """``CHECK: "task"``: the web process only signs and records; a db_worker reads."""
    from django_tasks_db.models import DBTaskResult

    settings.DUAL_STORAGE_UPLOADS = {"PART_BYTES": PART, "CHECK": "task"}
    data = os.urandom(PART + 3)
    session = browser.send_all(data)
    status, done = browser.complete(session, data)
    assert status == 200
    queued = DBTaskResult.objects.get(task_path="dual_storage_app.jobs.tasks.check_upload")
    assert Dataset.objects.get(pk=done["dataset"]["id"]).status == "verifying"
    call_command(
        "db_worker", "--batch", "--no-reload", "--no-startup-delay", "--interval", "0", verbosity=0
    )
    queued.refresh_from_db()
    assert queued.status == "SUCCESSFUL"
    dataset = Dataset.objects.get(pk=done["dataset"]["id"])
    assert (dataset.status, dataset.sha256) == ("ready", hashlib.sha256(data).hexdigest())


def test_a_wrong_check_setting_is_named(browser: Browser, settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE_UPLOADS = {"CHECK": "cron"}
    status, answer = browser.call(
        reverse("dual_storage_app:upload-start"), {"name": "a", "size": 1}
    )
    assert (status, answer["error"]) == (503, "Uploads are not configured on this site.")
    with pytest.raises(ConfigurationError, match=r"\['CHECK'\] must be one of"):
        upload_limits()


def complete_behind_our_back(s3_servers: Any, session: dict[str, Any]) -> None:
    """What a complete request does before its process dies: the store's upload is
    completed, and no row is written."""
    row = UploadSession.objects.get(pk=session["id"])
    client = s3_servers["external"].client()
    parts = client.list_parts(Bucket=row.bucket, Key=row.key, UploadId=row.upload_id)["Parts"]
    client.complete_multipart_upload(
        Bucket=row.bucket,
        Key=row.key,
        UploadId=row.upload_id,
        MultipartUpload={
            "Parts": [
                {
                    "PartNumber": p["PartNumber"],
                    "ETag": p["ETag"],
                    "ChecksumSHA256": row.checksums[str(p["PartNumber"])],
                }
                for p in parts
            ]
        },
    )


def test_a_complete_whose_process_died_is_finished_by_the_next(
    browser: Browser, s3_servers: Any
) -> None:
    data = os.urandom(PART + 11)
    session = browser.send_all(data)
    complete_behind_our_back(s3_servers, session)
    status, done = browser.complete(session, data)  # the browser's retry
    assert status == 200, done
    assert check_upload(session["id"]) == "ready"
    assert Dataset.objects.get(pk=done["dataset"]["id"]).sha256 == hashlib.sha256(data).hexdigest()


def test_an_expired_session_whose_complete_died_leaves_no_orphan(
    browser: Browser, direct: DualStorageClient, s3_servers: Any
) -> None:
    data = os.urandom(PART + 11)
    session = browser.send_all(data)
    complete_behind_our_back(s3_servers, session)
    assert stored(direct, session["key"]) == data
    UploadSession.objects.filter(pk=session["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    call_command("dualstorage_cleanup_uploads", "--json", stdout=io.StringIO())
    assert stored(direct, session["key"]) is None
    assert UploadSession.objects.get(pk=session["id"]).state == "expired"
