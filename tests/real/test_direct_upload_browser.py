"""Direct uploads in a real browser (Debian's Chromium through Playwright): the admin's
dataset add page sends the file from the browser straight to the external store
(``direct_upload.js``), never through Django.

A 300 MB file survives a cut of the network to the store and a reload: choosing it again
resumes the same session and sends only the parts the store lacks; the row's SHA-256,
read back by the server, is the file's. A part damaged on the way is refused by the store
and sent again. Pause and Resume go on from what the store holds; Cancel leaves no
multipart upload and no row.
With JavaScript off, the same page uploads through the form as before. When the bucket
has no CORS rule for the site, the widget says so and can send the file through the form
instead. A user's own form (``tests/testapp/dataset_form.py``, the README's example) takes
a direct upload or, JavaScript off, the file itself. Screenshots of each stage go to
``test-artifacts/browser/direct-upload-*.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django import forms
from django.core.exceptions import ValidationError
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server
from dual_storage_app.uploads.forms import DatasetUploadField
from dual_storage_app.uploads.session import UploadSession
from tests.helpers import (
    SCREENSHOTS,
    admin_url,
    changelist,
    log_in_to_admin,
    random_file,
    sha256_file,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.real_s3, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PART = 8 * MiB
WIDGET = "[data-dual-upload]"


class Store:
    """The external store's datasets bucket, as a test sees it (a plain boto3 client)."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def whole_parts(self, session: UploadSession) -> list[int]:
        """The numbers of the parts the store holds whole (ListParts, sizes checked)."""
        listed = self.client.list_parts(
            Bucket=self.bucket, Key=session.key, UploadId=session.upload_id
        )
        size = session.size
        return [
            part["PartNumber"]
            for part in listed.get("Parts", [])
            if part["Size"] == min(PART, size - (part["PartNumber"] - 1) * PART)
        ]

    def multipart_keys(self) -> set[str]:
        listed = self.client.list_multipart_uploads(Bucket=self.bucket)
        return {upload["Key"] for upload in listed.get("Uploads", [])}

    def keys_under(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (listed page by page)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def allow_browsers(client: S3Client, bucket: str, origin: str) -> None:
    """The CORS rule ``dualstorage_cors --set`` writes: browsers at ``origin`` may PUT."""
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["GET", "PUT", "HEAD"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                }
            ]
        },
    )


@pytest.fixture
def store(
    public_endpoint: str,
    live_server: Any,
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
) -> Iterator[Store]:
    """Direct uploads on: 8 MiB parts, and a CORS rule on the datasets bucket for the
    live server's origin (browsers PUT there from its pages); the rule goes after."""
    settings.DUAL_STORAGE_UPLOADS = {"PART_BYTES": PART}
    _, bucket = real_storage.locate("datasets")
    client = s3_servers["external"].client()
    allow_browsers(client, bucket, live_server.url)
    yield Store(client, bucket)
    client.delete_bucket_cors(Bucket=bucket)


@pytest.fixture
def store_without_cors(
    public_endpoint: str,
    live_server: Any,
    s3_servers: dict[str, LocalS3Server],
    real_storage: DualStorageClient,
    settings: SettingsWrapper,
) -> Store:
    """Direct uploads on, but no CORS rule on the datasets bucket: the store refuses
    every browser PUT (the preflight fails), as before ``dualstorage_cors --set``."""
    settings.DUAL_STORAGE_UPLOADS = {"PART_BYTES": PART}
    _, bucket = real_storage.locate("datasets")
    client = s3_servers["external"].client()
    client.delete_bucket_cors(Bucket=bucket)
    return Store(client, bucket)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"direct-upload-{name}.png"), full_page=True)


def widget_data(page: Any) -> dict[str, str]:
    """The widget's ``data-*`` attributes (state, session id, part counts...)."""
    data: dict[str, str] = page.eval_on_selector(WIDGET, "el => ({...el.dataset})")
    return data


def wait_for_state(page: Any, *states: str, timeout: float = 120) -> str:
    page.wait_for_function(
        f"states => states.includes(document.querySelector('{WIDGET}').dataset.state)",
        arg=list(states),
        timeout=timeout * 1000,
    )
    return widget_data(page)["state"]


def wait_for_count(page: Any, name: str, at_least: int, timeout: float = 60) -> None:
    page.wait_for_function(
        f"n => +(document.querySelector('{WIDGET}').dataset.{name} || 0) >= n",
        arg=at_least,
        timeout=timeout * 1000,
    )


def throttle_uploads(page: Any, bytes_per_second: int) -> Callable[[], None]:
    """Chromium's network throttling (DevTools protocol) for ``page``'s uploads, so a
    test can act mid-way on loopback; returns the function that lifts it."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")

    def conditions(upload: int) -> None:
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload},
        )

    conditions(bytes_per_second)
    return lambda: conditions(-1)


def quick_retries(page: Any) -> None:
    """Shorter backoff between tries of a PUT (the script's settings), so a test reaches
    the pause after the retries in about a second instead of fifteen."""
    page.evaluate("DualStorageUpload.settings.retryDelays = [100, 200, 300, 400]")


def wait_until_checked(pk: int, timeout: float = 120) -> Dataset:
    """The row once the server's read-back has left "verifying".

    The test database is SQLite's shared-cache memory database, where a read while the
    live server's read-back thread writes the same table fails at once ("database table
    is locked") instead of waiting as a file or PostgreSQL would: that read is tried
    again at the next poll."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            row = Dataset.objects.get(pk=pk)
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        else:
            if row.status != Dataset.Status.VERIFYING or time.monotonic() > deadline:
                return row
        time.sleep(0.25)


def form_posts(page: Any, url_part: str) -> list[int]:
    """The body sizes of the form posts ``page`` sends to URLs containing ``url_part``."""
    sizes: list[int] = []

    def seen(request: Any) -> None:
        if request.method == "POST" and url_part in request.url:
            sizes.append(len(request.post_data_buffer or b""))

    page.on("request", seen)
    return sizes


@pytest.mark.volume
def test_a_300_mb_dataset_resumes_after_a_network_cut_and_a_reload(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "survey-300mb.bin", 300 * MiB)
    expected = sha256_file(path)
    part_count = -(-path.stat().st_size // PART)  # 38
    add_page = f"{live_server.url}{admin_url(Dataset, 'add')}"

    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(add_page)
    assert page.get_attribute(WIDGET, "data-dual-upload-ready") is not None
    page.fill("#id_name", "survey (direct)")
    # Loopback is fast: slow the first run to ~60 MB/s, so the cut comes mid-way.
    unthrottle = throttle_uploads(page, 60 * MiB)
    first_started = time.monotonic()
    page.set_input_files("#id_file", str(path))
    assert page.get_attribute("#id_file", "name") is None  # never posted through Django
    wait_for_count(page, "partsUploaded", 5)
    assert page.is_disabled("input[name=_save]")  # no half-way submit
    shot(page, "01-uploading")

    # Cut the network to the store: the parts in flight fail, are retried with backoff,
    # and the upload pauses, keeping its state.
    def to_the_store(url: str) -> bool:
        return f"/{store.bucket}/" in url

    page.route(to_the_store, lambda route: route.abort())
    wait_for_state(page, "paused", timeout=90)
    first_run = widget_data(page)
    first_seconds = time.monotonic() - first_started
    assert "Paused: network error" in page.inner_text("[data-dual-upload-status]")
    assert page.is_visible("[data-dual-upload-resume]")
    shot(page, "02-paused-network-error")
    session = UploadSession.objects.get(pk=first_run["sessionId"])
    assert int(first_run["partCount"]) == session.part_count == part_count
    held = store.whole_parts(session)
    assert 0 < len(held) < part_count, held

    # A reload (or a closed tab), the network back, the same file chosen again: the same
    # session resumes and only the parts the store lacks are sent.
    page.unroute(to_the_store)
    unthrottle()
    page.reload()
    page.fill("#id_name", "survey (direct)")
    posts = form_posts(page, admin_url(Dataset, "add"))
    second_started = time.monotonic()
    page.set_input_files("#id_file", str(path))
    wait_for_state(page, "verifying", "done", timeout=300)
    second_seconds = time.monotonic() - second_started
    second_run = widget_data(page)
    shot(page, "03-resumed-and-uploaded")
    assert second_run["sessionId"] == first_run["sessionId"]
    assert second_run["resumed"] == "true"
    assert int(second_run["storedParts"]) >= len(held)
    sent, skipped = int(second_run["partsSent"]), int(second_run["partsSkipped"])
    assert skipped == len(held) and sent == part_count - len(held) < part_count
    assert int(second_run["partsUploaded"]) + skipped == part_count
    assert page.input_value(f"{WIDGET} [data-dual-upload-session]") == str(session.pk)
    assert page.is_enabled("input[name=_save]")  # the upload is done: the form may go

    # Saved at once, while the server may still be reading the object back: the form
    # saves the session's row, and the check's result lands on it.
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}{changelist(Dataset)}")
    shot(page, "04-listed")
    assert posts and max(posts) < 64 * 1024, posts  # the form, not the file

    row = wait_until_checked(int(second_run["datasetId"]))
    assert row.status == Dataset.Status.READY
    assert row.sha256 == expected
    assert row.size == path.stat().st_size
    assert row.name == "survey (direct)"
    assert row.key == session.key and row.uploaded_by == admin_user
    assert Dataset.objects.count() == 1
    assert session.key not in store.multipart_keys()
    print(  # figures for the report (pytest -s)
        f"\nfirst run: {first_run['partsUploaded']} parts stored before the cut, "
        f"paused after {first_seconds:.1f} s; second run: {sent} PUTs, {skipped} parts "
        f"skipped of {part_count}, {second_seconds:.1f} s to verifying/done"
    )
    context.close()


def test_a_damaged_part_is_sent_again_and_the_widget_shows_the_verified_hash(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "small-direct.tar", 2 * PART + 4321)
    expected = sha256_file(path)
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(f"{live_server.url}{admin_url(Dataset, 'add')}")
    page.fill("#id_description", "three parts")
    damaged: list[str] = []

    def damage_part_two_once(route: Any) -> None:
        """Zeros instead of part 2's bytes, once: the store refuses them (BadDigest)."""
        request = route.request
        if request.method == "PUT" and "partNumber=2&" in request.url and not damaged:
            damaged.append(request.url)
            route.continue_(post_data=bytes(PART))
        else:
            route.continue_()

    page.route(lambda url: f"/{store.bucket}/" in url, damage_part_two_once)
    page.set_input_files("#id_file", str(path))
    wait_for_state(page, "done", timeout=60)
    data = widget_data(page)
    assert damaged  # part 2 was sent twice: damaged, then read, hashed and sent again
    assert (data["partsSent"], data["partsUploaded"]) == ("4", "3")
    assert (data["partsSkipped"], data["resumed"]) == ("0", "false")
    assert page.inner_text("[data-dual-upload-status]") == f"Verified (SHA-256 {expected[:12]}…)"
    assert page.inner_text("[data-dual-upload-figures]") == "16 MB of 16 MB"
    row_id = int(data["datasetId"])
    link = page.get_attribute("[data-dual-upload-link]", "href")
    assert link == f"{live_server.url}{admin_url(Dataset, 'change', row_id)}"
    shot(page, "05-verified")
    page.click("input[name=_save]")  # the name is left empty: the file's
    page.wait_for_url(f"{live_server.url}{changelist(Dataset)}")
    row = Dataset.objects.get()
    assert row.pk == row_id and row.name == "small-direct.tar"
    assert row.description == "three parts"
    assert (row.status, row.sha256, row.size) == ("ready", expected, path.stat().st_size)
    context.close()


def test_cancel_leaves_no_multipart_upload_and_no_row(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "cancelled-64mb.bin", 64 * MiB)
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(f"{live_server.url}{admin_url(Dataset, 'add')}")
    throttle_uploads(page, 16 * MiB)  # four seconds: Cancel comes mid-way
    page.set_input_files("#id_file", str(path))
    wait_for_count(page, "partsUploaded", 1)
    session_id = widget_data(page)["sessionId"]
    session = UploadSession.objects.get(pk=session_id)
    assert session.key in store.multipart_keys()

    # Pause stops the PUTs (the ones in flight are aborted); Resume asks the store what
    # it holds and goes on from there.
    page.click("[data-dual-upload-pause]")
    wait_for_state(page, "paused", timeout=10)
    paused = widget_data(page)
    held = store.whole_parts(session)
    assert page.inner_text("[data-dual-upload-status]").startswith("Paused at ")
    page.wait_for_timeout(500)
    assert widget_data(page)["partsSent"] == paused["partsSent"]  # nothing new goes out
    page.click("[data-dual-upload-resume]")
    wait_for_count(page, "storedParts", len(held))
    wait_for_count(page, "partsUploaded", int(paused["partsUploaded"]) + 1)
    assert wait_for_state(page, "uploading") == "uploading"
    shot(page, "06-before-cancel")

    page.click("[data-dual-upload-cancel]")
    wait_for_state(page, "cancelled", timeout=30)
    shot(page, "07-cancelled")
    session.refresh_from_db()
    assert session.state == UploadSession.State.ABORTED
    assert session.key not in store.multipart_keys()
    assert not Dataset.objects.exists()
    # The widget starts over: the file input is the form's again, nothing is attached.
    assert page.get_attribute("#id_file", "name") == "file"
    assert page.input_value("#id_file") == ""
    assert page.input_value(f"{WIDGET} [data-dual-upload-session]") == ""
    assert page.is_enabled("input[name=_save]")
    context.close()


def test_without_javascript_the_form_uploads_the_file_as_before(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "plain-upload.csv", 3 * MiB + 17)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(f"{live_server.url}{admin_url(Dataset, 'add')}")
    assert page.get_attribute(WIDGET, "data-dual-upload-ready") is None  # no script ran
    page.set_input_files("#id_file", str(path))  # the name is left empty: the file's
    shot(page, "08-no-javascript")
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}{changelist(Dataset)}")
    row = Dataset.objects.get()
    assert row.name == "plain-upload.csv"
    assert row.sha256 == sha256_file(path) and row.size == path.stat().st_size
    assert row.status == Dataset.Status.READY
    assert not UploadSession.objects.exists()
    context.close()


def test_a_store_without_cors_says_so_and_the_file_can_go_through_the_site(
    browser: Any, live_server: Any, admin_user: Any, store_without_cors: Store, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "refused.bin", 2 * PART + 99)
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(f"{live_server.url}{admin_url(Dataset, 'add')}")
    quick_retries(page)
    page.set_input_files("#id_file", str(path))
    wait_for_state(page, "paused", timeout=60)
    data = widget_data(page)
    assert int(data["partsSent"]) >= 5 and data["partsUploaded"] == "0"
    assert page.inner_text("[data-dual-upload-status]") == (
        "The browser cannot reach the datasets store. Ask an administrator to run: "
        "manage.py dualstorage_cors --check"
    )
    assert page.is_visible("[data-dual-upload-ordinary]")
    assert page.is_visible("[data-dual-upload-resume]")
    assert page.is_disabled("input[name=_save]")
    shot(page, "09-store-refuses-the-browser")
    session = UploadSession.objects.get(pk=data["sessionId"])

    # Through this site instead: the session is cancelled, the file input is the form's
    # again (the file still chosen), and saving posts the file to Django.
    page.click("[data-dual-upload-ordinary]")
    wait_for_state(page, "ordinary", timeout=30)
    session.refresh_from_db()
    assert session.state == UploadSession.State.ABORTED
    assert session.key not in store_without_cors.multipart_keys()
    assert page.get_attribute("#id_file", "name") == "file"
    assert page.eval_on_selector("#id_file", "input => input.files.length") == 1
    assert page.input_value(f"{WIDGET} [data-dual-upload-session]") == ""
    assert page.inner_text("[data-dual-upload-status]") == (
        "The file will be sent through this site when you save the form."
    )
    assert page.is_enabled("input[name=_save]")
    shot(page, "10-through-the-site")
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}{changelist(Dataset)}")
    row = Dataset.objects.get()  # the file went with the form: Django stored it
    assert (row.name, row.status) == ("refused.bin", Dataset.Status.READY)
    assert row.sha256 == sha256_file(path) and row.size == path.stat().st_size
    context.close()


# -- a user's own form: the README's example (tests/testapp/dataset_form.py) ----------------


def run_form_url(live_server: Any) -> str:
    return f"{live_server.url}{reverse('start-run')}"


def submitted(page: Any) -> dict[str, Any]:
    """The view's JSON answer after the form was posted."""
    page.wait_for_url(lambda url: not url.startswith("about:"))
    answer: dict[str, Any] = json.loads(page.inner_text("body"))
    return answer


def test_a_users_form_takes_a_direct_upload(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "run-data.tar", PART + 12345)
    context = browser.new_context()
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(run_form_url(live_server))
    assert page.get_attribute(WIDGET, "data-dual-upload-ready") is not None
    page.fill("#id_name", "run 7")
    posts = form_posts(page, reverse("start-run"))
    page.set_input_files("#id_dataset", str(path))
    wait_for_state(page, "verifying", "done", timeout=60)
    shot(page, "11-users-form-direct")
    data = widget_data(page)
    with page.expect_navigation():
        page.click("button[type=submit]")
    answer = submitted(page)
    assert answer == {"run": "run 7", "dataset": int(data["datasetId"])}
    assert posts and max(posts) < 64 * 1024  # the form, not the file
    row = wait_until_checked(answer["dataset"])
    assert (row.status, row.sha256) == (Dataset.Status.READY, sha256_file(path))
    assert (row.name, row.size, row.uploaded_by) == (
        "run-data.tar",
        path.stat().st_size,
        admin_user,
    )
    assert Dataset.objects.count() == 1
    context.close()


def test_a_users_form_without_javascript_uploads_the_file(
    browser: Any, live_server: Any, admin_user: Any, store: Store, tmp_path: Path
) -> None:
    path = random_file(tmp_path / "plain-run.csv", MiB + 3)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in_to_admin(page, live_server.url)
    page.goto(run_form_url(live_server))
    assert page.get_attribute(WIDGET, "data-dual-upload-ready") is None  # no script ran
    assert not page.is_visible("[data-dual-upload-folder-controls]")
    page.fill("#id_name", "run 8")
    page.set_input_files("#id_dataset", str(path))
    with page.expect_navigation():
        page.click("button[type=submit]")
    answer = submitted(page)
    row = Dataset.objects.get(pk=answer["dataset"])
    assert answer["run"] == "run 8"
    assert (row.name, row.status, row.uploaded_by) == ("plain-run.csv", "ready", admin_user)
    assert row.sha256 == sha256_file(path) and row.size == path.stat().st_size
    assert not UploadSession.objects.exists()
    context.close()


def finished_upload(user: Any, kind: str = UploadSession.Kind.FILE) -> UploadSession:
    """A completed session whose dataset the server is still reading back."""
    key = "datasets/0123456789ab/late.bin"
    row = Dataset.objects.create(
        name="late.bin", file=key, bucket="datasets", size=3, status=Dataset.Status.VERIFYING
    )
    return UploadSession.objects.create(
        user=user,
        kind=kind,
        file_name="late.bin",
        size=3,
        bucket="datasets",
        key=key,
        part_size=PART,
        part_count=1,
        expires_at=timezone.now(),
        state=UploadSession.State.COMPLETED,
        dataset=row,
    )


def test_saving_a_users_form_never_undoes_the_servers_check(admin_user: Any) -> None:
    """The README's ``dataset.save()`` may run while the server records the SHA-256: the
    row the field gives leaves the server's columns unloaded, so they are not written."""
    session = finished_upload(admin_user)
    field = DatasetUploadField()
    field.user = admin_user
    dataset = field.clean(str(session.pk))
    assert dataset is not None and dataset.pk == session.dataset_id
    Dataset.objects.filter(pk=dataset.pk).update(status="ready", sha256="ab" * 32)  # the check
    dataset.name = "renamed"
    dataset.save()
    row = Dataset.objects.get(pk=dataset.pk)
    assert (row.name, row.status, row.sha256) == ("renamed", "ready", "ab" * 32)
    assert dataset.status == "ready"  # read fresh when asked for


def test_a_field_without_folders_neither_offers_nor_takes_one(admin_user: Any) -> None:
    class Form(forms.Form):
        files_only = DatasetUploadField(folders=False)
        any_dataset = DatasetUploadField()

    html = Form().as_div()
    files_only, any_dataset = html.split('name="files_only__upload"')[0], html
    assert "data-start-url=" in files_only and "data-start-folder-url" not in files_only
    assert any_dataset.count("data-start-folder-url=") == 1
    field = DatasetUploadField(folders=False)
    field.user = admin_user
    folder = finished_upload(admin_user, UploadSession.Kind.FOLDER)
    with pytest.raises(ValidationError, match="Choose a file, not a folder"):
        field.clean(str(folder.pk))
