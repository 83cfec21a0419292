"""The storage jobs' admin pages in Debian's Chromium: the list with each job's progress,
and a finished verify's read-only page with its report and batches (screenshots in
``test-artifacts/browser/jobs-*.png``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from dual_storage_app.client import DualStorageClient
from dual_storage_app.jobs import engine
from dual_storage_app.jobs.runner import start_job
from dual_storage_app.models import ModelWeight
from tests.helpers import SCREENSHOTS, log_in_to_admin

pytestmark = [
    pytest.mark.real_s3,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_the_jobs_admin_in_a_real_browser(
    browser: Any, live_server: Any, dual_storage_buckets: DualStorageClient, admin_user: Any
) -> None:
    weights = []
    for i in range(5):
        weight = ModelWeight(name=f"w{i}")
        weight.file.save(f"w{i}.pth", ContentFile(b"weights %d" % i))
        weights.append(weight)
    store, bucket = dual_storage_buckets.locate("weights")
    store.delete(bucket, weights[3].key)
    finished = start_job("verify", {"batch_size": 2}, now=True)
    running = start_job("verify", {"batch_size": 2})  # enqueued; no worker here
    first, second, _ = running.batches.order_by("index")
    engine.run_batch(first.pk)
    engine.claim_batch(second.pk, worker="gpu-node-7:4242")

    page = browser.new_context().new_page()
    log_in_to_admin(page, live_server.url)
    page.get_by_role("link", name="Storage jobs", exact=True).click()
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    newest, oldest = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert f"verify job #{running.pk}" in newest and "running" in newest
    assert "1 / 3" in newest and "2 / 5" in newest  # batches done, artifacts checked
    assert f"verify job #{finished.pk}" in oldest and "done" in oldest
    assert "3 / 3" in oldest and "5 / 5" in oldest
    assert page.locator("text=Add storage job").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "jobs-01-changelist.png"), full_page=True)

    page.click(f"text=verify job #{finished.pk}")
    report = page.locator(".field-report_display").inner_text()
    assert '"missing": 1' in report and '"intact": 4' in report
    assert "missing: no object at its key" in report
    assert page.locator("input[name=_save]").count() == 0  # read-only
    batches = page.locator(".inline-group").inner_text()
    assert batches.count("done") >= 3
    page.screenshot(path=str(SCREENSHOTS / "jobs-02-report.png"), full_page=True)

    page.goto(
        live_server.url + reverse("admin:dual_storage_jobs_storagejob_change", args=[running.pk])
    )
    assert "gpu-node-7:4242" in page.locator(".inline-group").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "jobs-03-running.png"), full_page=True)
