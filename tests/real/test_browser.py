"""A real browser (Debian's Chromium, driven by Playwright) against a live server and the
real S3 servers: log in, upload a weight, see its size and hash, presign a dataset and
fetch the link, download an internal artifact through the admin, and see an anonymous
user refused. Screenshots of each step go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app import cors
from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import Dataset, ModelWeight
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import SCREENSHOTS
from tests.http import fetch

pytestmark = [pytest.mark.real_s3, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_end_to_end_in_a_real_browser(
    browser: Any,
    live_server: Any,
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    settings: SettingsWrapper,
    admin_user: Any,
    tmp_path: Path,
) -> None:
    public = f"http://localhost:{s3_servers['external'].s3_port}"
    settings.DUAL_STORAGE = {**settings.DUAL_STORAGE, "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": public}
    weight_bytes = os.urandom(1536 * 1024)
    weight_file = tmp_path / "resnet-browser.pth"
    weight_file.write_bytes(weight_bytes)
    dataset_bytes = b"PK-browser-dataset" * 1000
    dataset_file = tmp_path / "coco-browser.zip"
    dataset_file.write_bytes(dataset_bytes)

    context = browser.new_context(accept_downloads=True)
    page = context.new_page()

    def shot(name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    # 1. Log in.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    shot("01-login")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert "Model weights" in page.content()
    shot("02-admin-index")

    # 2. Upload a weight through the add form; its size and short hash are listed.
    page.goto(f"{live_server.url}/admin/dual_storage_app/modelweight/add/")
    page.fill("#id_name", "browser weight")
    page.set_input_files("#id_file", str(weight_file))
    shot("03-add-weight")
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/dual_storage_app/modelweight/")
    weight = ModelWeight.objects.get(name="browser weight")
    sha = hashlib.sha256(weight_bytes).hexdigest()
    assert weight.sha256 == sha and weight.size == len(weight_bytes)
    assert weight.uploaded_by == admin_user
    listing = page.content()
    assert sha[:12] in listing
    assert str(filesizeformat(len(weight_bytes))).replace("\xa0", " ") in listing.replace(
        "&nbsp;", " "
    ).replace("\xa0", " ")
    shot("04-weight-listed")

    # 3. Upload a dataset (straight from the browser to the store, which allows the
    # site's origin), presign it through the action once verified, fetch the link.
    store, bucket = real_storage.locate("datasets")
    cors.set_rule(store, bucket, [live_server.url])
    page.goto(f"{live_server.url}/admin/dual_storage_app/dataset/add/")
    page.fill("#id_name", "browser dataset")
    page.set_input_files("#id_file", str(dataset_file))
    page.wait_for_function(
        "['verifying', 'done'].includes(document.querySelector('[data-dual-upload]').dataset.state)"
    )
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/dual_storage_app/dataset/")
    store.client.delete_bucket_cors(Bucket=bucket)
    for _ in range(100):  # the server's read-back runs after the commit
        if Dataset.objects.get(name="browser dataset").status == "ready":
            break
        time.sleep(0.1)
    page.reload()
    page.check("input.action-select")
    page.select_option("select[name=action]", "create_presigned_links")
    page.click("button[name=index]")
    page.fill("#id_expires", "600")
    shot("05-presign-form")
    page.click("input[name=apply]")
    link = page.get_attribute("a.presigned-link", "href")
    assert link is not None
    assert urlsplit(link).netloc == urlsplit(public).netloc
    assert "X-Amz-Expires=600" in link
    shot("06-presign-result")
    assert fetch(link) == dataset_bytes

    # 4. Download the internal weight through the admin (streamed by Django).
    page.goto(f"{live_server.url}/admin/dual_storage_app/modelweight/")
    page.check("input.action-select")
    page.select_option("select[name=action]", "download")
    shot("07-download-action")
    with page.expect_download() as download_info:
        page.click("button[name=index]")
    download = download_info.value
    assert download.suggested_filename == "resnet-browser.pth"
    assert Path(download.path()).read_bytes() == weight_bytes
    internal_endpoint = s3_servers["internal"].endpoint_url
    assert internal_endpoint not in download.url
    assert download.url.startswith(live_server.url)

    # 5. An anonymous browser is sent to the login page, never to the bytes.
    anonymous = browser.new_context()
    anonymous_page = anonymous.new_page()
    stream_url = live_server.url + reverse(
        "dual_storage_app:artifact-download", args=["weights", weight.pk]
    )
    anonymous_page.goto(stream_url)
    assert "/admin/login/" in anonymous_page.url
    assert "Password" in anonymous_page.content()
    anonymous_page.screenshot(path=str(SCREENSHOTS / "08-anonymous-refused.png"))
    anonymous.close()
    context.close()
    assert Dataset.objects.get(name="browser dataset").size == len(dataset_bytes)
