"""Checkpoint retention on the real servers: ``dualstorage_retention`` (dry run, JSON,
applying), rows and objects deleted together, a row pinned after planning, the admin's
pin / unpin actions and retention preview (test client and Chromium).

The selection rules without a server: ``tests/test_retention.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.urls import reverse
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.client import DualStorageClient
from dual_storage_app.management._common import format_size, size_text
from dual_storage_app.models import RetentionPolicy, TrainingCheckpoint
from dual_storage_app.retention import apply_retention, plan_retention
from tests.helpers import SCREENSHOTS, changelist, levels, log_in_to_admin, run, run_json

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def job(unique_key: str) -> str:
    """A fresh job id (one key segment)."""
    return unique_key.replace("/", "-")


@pytest.fixture
def keep_last_two_and_best(real_storage: DualStorageClient, settings: SettingsWrapper) -> None:
    """Project default: the last 2 epochs and the best 1 by val_loss."""
    settings.DUAL_STORAGE = {
        **settings.DUAL_STORAGE,
        "RETENTION_KEEP_LAST": "2",
        "RETENTION_KEEP_BEST": "1",
        "RETENTION_METRIC": "val_loss",
    }


def saved(job: str, epoch: int, *, val_loss: float, pinned: bool = False) -> TrainingCheckpoint:
    """A checkpoint of ``epoch`` whose object (``epoch`` KB) is uploaded through the model."""
    row = TrainingCheckpoint(
        name=f"{job} epoch {epoch}",
        job_id=job,
        epoch=epoch,
        metrics={"val_loss": val_loss},
        pinned=pinned,
    )
    row.file.save(f"epoch_{epoch}.pt", ContentFile(bytes([epoch]) * 1000 * epoch))
    return row


def six_epochs(job: str) -> dict[int, TrainingCheckpoint]:
    """Epochs 1-6; epoch 2 has the best val_loss, epoch 1 is pinned. With the last 2 and
    the best 1 kept, epochs 3 and 4 go (7,000 bytes)."""
    losses = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.4, 5: 0.3, 6: 0.35}
    return {e: saved(job, e, val_loss=loss, pinned=e == 1) for e, loss in losses.items()}


def stored(storage: DualStorageClient, row: TrainingCheckpoint) -> bool:
    return storage.exists("checkpoints", row.key)


def remaining(job: str) -> set[int | None]:
    """The epochs of ``job`` that still have rows."""
    return set(TrainingCheckpoint.objects.filter(job_id=job).values_list("epoch", flat=True))


# -- the command ---------------------------------------------------------------------------


def test_dry_run_changes_nothing_and_reports_the_bytes(
    real_storage: DualStorageClient, keep_last_two_and_best: None, job: str
) -> None:
    rows = six_epochs(job)
    text = run("dualstorage_retention", "--job", job, "--dry-run")
    assert f"Job {job!r}: keep last 2, best 1 by val_loss (min: lower is better)" in text
    assert (
        f"keep   #{rows[6].pk} epoch 6 {rows[6].key} ({format_size(6000)}): last 2, newest" in text
    )
    assert (
        f"keep   #{rows[2].pk} epoch 2 {rows[2].key} ({format_size(2000)}): best 1 by val_loss"
        in text
    )
    assert f"keep   #{rows[1].pk} epoch 1 {rows[1].key} ({format_size(1000)}): pinned" in text
    assert f"delete #{rows[4].pk} epoch 4 {rows[4].key} ({format_size(4000)})" in text
    assert f"2 to delete, freeing {size_text(7000)}." in text
    assert f"would be deleted, freeing {size_text(7000)}; nothing was deleted." in text

    report = run_json("dualstorage_retention", "--job", job, "--dry-run")
    assert report["dry_run"] is True and report["planned_bytes_freed"] == 7000
    (planned,) = report["jobs"]
    assert [row["id"] for row in planned["delete"]] == [rows[4].pk, rows[3].pk]
    assert {row["epoch"]: row["reasons"] for row in planned["kept"]} == {
        6: ["last 2", "newest"],
        5: ["last 2"],
        2: ["best 1 by val_loss"],
        1: ["pinned"],
    }
    assert planned["policy"]["source"] == "project default"
    assert "deleted" not in report
    assert remaining(job) == {1, 2, 3, 4, 5, 6}
    assert all(stored(real_storage, row) for row in rows.values())


def test_applying_deletes_exactly_the_planned_rows_and_their_objects(
    real_storage: DualStorageClient, keep_last_two_and_best: None, job: str
) -> None:
    rows = six_epochs(job)
    losses = {1: 1.0, 2: 0.5, 3: 1.0, 4: 1.0}  # keeps 4, 3 (last 2) and 2 (best)
    other = {e: saved(f"{job}-other", e, val_loss=loss) for e, loss in losses.items()}
    planned = {row.pk for row in plan_retention(job).delete}
    assert planned == {rows[3].pk, rows[4].pk}

    report = run_json("dualstorage_retention", "--job", job)
    assert {row["id"] for row in report["deleted"]} == planned
    assert report["bytes_freed"] == 7000 and report["spared"] == []
    assert remaining(job) == {1, 2, 5, 6}
    for epoch, row in rows.items():
        assert stored(real_storage, row) is (epoch not in (3, 4)), epoch
    assert real_storage.head("checkpoints", rows[1].key).size == 1000  # pinned, intact
    # --job left the other job alone, though its policy would delete some of it.
    assert all(stored(real_storage, row) for row in other.values())
    assert remaining(f"{job}-other") == {1, 2, 3, 4}

    text = run("dualstorage_retention")  # every job: now only the other one loses rows
    assert f"deleted #{other[1].pk} epoch 1 {other[1].key}" in text
    assert f"Deleted 1 checkpoint(s) of 1 job(s), freeing {size_text(1000)}." in text
    assert not stored(real_storage, other[1])
    assert remaining(f"{job}-other") == {2, 3, 4}


def test_a_row_pinned_after_planning_survives_apply(
    real_storage: DualStorageClient, keep_last_two_and_best: None, job: str
) -> None:
    rows = six_epochs(job)
    plan = plan_retention(job)
    TrainingCheckpoint.objects.filter(pk=rows[3].pk).update(pinned=True)
    result = apply_retention(plan)
    assert [item.id for item in result.deleted] == [rows[4].pk]
    assert [(item.checkpoint.pk, item.reason) for item in result.spared] == [
        (rows[3].pk, "pinned since the plan was made")
    ]
    assert remaining(job) == {1, 2, 3, 5, 6}
    assert stored(real_storage, rows[3]) and not stored(real_storage, rows[4])


def test_a_job_policy_overrides_the_default_when_applied(
    real_storage: DualStorageClient, keep_last_two_and_best: None, job: str
) -> None:
    rows = six_epochs(job)
    RetentionPolicy.objects.create(job_id=job, keep_last=1, keep_best=0)
    report = run_json("dualstorage_retention", "--job", job)
    assert (
        report["jobs"][0]["policy"]["source"]
        == "job policy (metric, metric_mode from the project default)"
    )
    assert remaining(job) == {1, 6}
    assert [stored(real_storage, rows[e]) for e in (1, 2, 6)] == [True, False, True]


# -- the admin -------------------------------------------------------------------------------


def act(client: Client, action: str, *rows: TrainingCheckpoint, **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [row.pk for row in rows], **extra}
    return client.post(changelist(TrainingCheckpoint), data, follow=True)


def test_pin_and_unpin_actions(
    real_storage: DualStorageClient, admin_client: Client, job: str
) -> None:
    first, second = saved(job, 1, val_loss=0.1), saved(job, 2, val_loss=0.2)
    response = act(admin_client, "pin", first, second)
    assert levels(response) == [(messages.SUCCESS, "Pinned 2 checkpoints.")]
    assert set(TrainingCheckpoint.objects.values_list("pinned", flat=True)) == {True}
    listed = admin_client.get(changelist(TrainingCheckpoint), {"pinned__exact": "1"})
    assert {row.pk for row in listed.context["cl"].result_list} == {first.pk, second.pk}
    assert "pinned" in listed.context["cl"].list_display

    response = act(admin_client, "unpin", second)
    assert levels(response) == [(messages.SUCCESS, "Unpinned 1 checkpoint.")]
    assert TrainingCheckpoint.objects.get(pk=second.pk).pinned is False
    assert TrainingCheckpoint.objects.get(pk=first.pk).pinned is True


def test_preview_lists_the_plan_and_applying_it_returns_to_the_list(
    real_storage: DualStorageClient, keep_last_two_and_best: None, admin_client: Client, job: str
) -> None:
    rows = six_epochs(job)
    page = act(admin_client, "preview_retention", rows[6])
    assert page.status_code == 200
    assert "dual_storage_app/admin/retention_preview.html" in [t.name for t in page.templates]
    text = page.content.decode()
    assert f"Job {job}" in text and "keep last 2, best 1 by val_loss" in text
    assert "kept: last 2, newest" in text and "kept: pinned" in text
    assert text.count("would be deleted</strong>") == 2
    assert f"2 checkpoints would be deleted, freeing {filesizeformat(7000)}." in text
    assert 'name="csrfmiddlewaretoken"' in text and 'name="apply"' in text
    assert remaining(job) == {1, 2, 3, 4, 5, 6}  # previewing deletes nothing

    # The form as the page built it; epoch 3 is pinned before it is sent.
    planned = [row.pk for row in page.context["plan"].delete]
    assert planned == [rows[4].pk, rows[3].pk]
    TrainingCheckpoint.objects.filter(pk=rows[3].pk).update(pinned=True)
    done = act(admin_client, "preview_retention", rows[6], planned=planned, apply="1")
    assert done.redirect_chain[-1][0] == changelist(TrainingCheckpoint)
    assert levels(done) == [
        (
            messages.WARNING,
            f"Retention deleted 1 checkpoint, freeing {filesizeformat(4000)}. 1 planned "
            "checkpoint was kept: it was pinned, deleted or no longer planned since the preview.",
        )
    ]
    assert remaining(job) == {1, 2, 3, 5, 6}
    assert not stored(real_storage, rows[4]) and stored(real_storage, rows[3])


def test_applying_deletes_only_rows_the_preview_showed(
    real_storage: DualStorageClient, keep_last_two_and_best: None, admin_client: Client, job: str
) -> None:
    rows = six_epochs(job)
    forged = [rows[4].pk, "\u00b2", "9" * 30, "x", ""]  # only the real id counts
    done = act(admin_client, "preview_retention", rows[6], planned=forged, apply="1")
    assert levels(done) == [
        (messages.SUCCESS, f"Retention deleted 1 checkpoint, freeing {filesizeformat(4000)}.")
    ]
    assert remaining(job) == {1, 2, 3, 5, 6}


def test_applying_needs_delete_permission(
    real_storage: DualStorageClient,
    keep_last_two_and_best: None,
    django_user_model: Any,
    job: str,
) -> None:
    rows = six_epochs(job)
    user = django_user_model.objects.create_user(username="editor", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_trainingcheckpoint", "change_trainingcheckpoint"]
        )
    )
    client = Client()
    client.force_login(user)
    page = act(client, "preview_retention", rows[6])
    assert page.status_code == 200 and page.context["can_apply"] is False
    assert 'name="apply"' not in page.content.decode()
    refused = act(client, "preview_retention", rows[6], planned=[rows[3].pk, rows[4].pk], apply="1")
    assert levels(refused) == [
        (
            messages.ERROR,
            "Nothing was deleted: applying retention needs permission to delete training "
            "checkpoints.",
        )
    ]
    assert remaining(job) == {1, 2, 3, 4, 5, 6}


def test_applying_needs_the_csrf_token(
    real_storage: DualStorageClient, keep_last_two_and_best: None, admin_user: Any, job: str
) -> None:
    rows = six_epochs(job)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    data = {
        "action": "preview_retention",
        "_selected_action": [rows[6].pk],
        "planned": [rows[3].pk, rows[4].pk],
        "apply": "1",
    }
    assert client.post(changelist(TrainingCheckpoint), data).status_code == 403
    assert remaining(job) == {1, 2, 3, 4, 5, 6}


def test_retention_policies_are_in_the_admin(
    real_storage: DualStorageClient, keep_last_two_and_best: None, admin_client: Client
) -> None:
    RetentionPolicy.objects.create(job_id="run-7", keep_last=5)
    page = admin_client.get(reverse("admin:dual_storage_app_retentionpolicy_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "run-7" in text and "keep last 5, best 1 by val_loss (min: lower is better)" in text
    added = admin_client.post(
        reverse("admin:dual_storage_app_retentionpolicy_add"),
        {"job_id": "../x", "keep_last": "0", "keep_best": "", "metric": "", "metric_mode": ""},
    )
    assert added.status_code == 200
    assert set(added.context["adminform"].form.errors) == {"job_id", "keep_last"}


# -- in a real browser -----------------------------------------------------------------------


@pytest.mark.browser
def test_retention_preview_and_apply_in_a_real_browser(
    browser: Any,
    live_server: Any,
    real_storage: DualStorageClient,
    keep_last_two_and_best: None,
    admin_user: Any,
    job: str,
) -> None:
    rows = six_epochs(job)
    context = browser.new_context()
    page = context.new_page()

    def shot(name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    log_in_to_admin(page, live_server.url)

    # Select every checkpoint of the job, preview its retention.
    page.goto(f"{live_server.url}{changelist(TrainingCheckpoint)}?job_id={job}")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "preview_retention")
    with page.expect_navigation():
        page.click("button[name=index]")
    page.wait_for_selector("table.retention-rows")
    shot("retention-01-preview")
    kept = page.locator("tr.retention-kept").all_inner_texts()
    going = page.locator("tr.retention-delete").all_inner_texts()
    assert len(kept) == 4 and len(going) == 2
    assert any("last 2, newest" in row and rows[6].key in row for row in kept)
    assert any("pinned" in row and rows[1].key in row for row in kept)
    assert any("best 1 by val_loss" in row and rows[2].key in row for row in kept)
    assert all(any(rows[epoch].key in row for row in going) for epoch in (3, 4))
    freed = page.inner_text("p.retention-total").replace("\xa0", " ")
    assert f"freeing {filesizeformat(7000)}".replace("\xa0", " ") in freed
    assert remaining(job) == {1, 2, 3, 4, 5, 6}

    # Apply: back on the list with one summary message; rows and objects are gone.
    with page.expect_navigation():
        page.click("input[name=apply]")
    page.wait_for_selector("ul.messagelist")
    shot("retention-02-applied")
    assert page.url.startswith(f"{live_server.url}{changelist(TrainingCheckpoint)}")
    message = page.inner_text("ul.messagelist").replace("\xa0", " ")
    assert "Retention deleted 2 checkpoints, freeing" in message
    assert remaining(job) == {1, 2, 5, 6}
    assert not stored(real_storage, rows[3]) and not stored(real_storage, rows[4])
    assert stored(real_storage, rows[1]) and stored(real_storage, rows[6])
    context.close()
