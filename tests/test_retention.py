"""Checkpoint retention without a server: the selection rules, the per-job policy and its
fallback to the project default, apply-time re-checks, and the command's refusals.

Rows are written with ``file`` set to a key string, so nothing is uploaded; their
objects would be deleted after a commit that these tests never make. On the real
servers (objects deleted, the admin, Chromium): ``tests/real/test_retention.py``.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone
from pytest_django import Settings as SettingsWrapper

from dual_storage_app.exceptions import InvalidKey
from dual_storage_app.models import RetentionPolicy, TrainingCheckpoint
from dual_storage_app.retention import (
    NO_POLICY,
    JobPlan,
    RetentionPlan,
    apply_retention,
    plan_as_previewed,
    plan_retention,
)
from tests.helpers import MOTO_SETTINGS, run, run_json

pytestmark = pytest.mark.django_db

JOB = "resnet-run"


@pytest.fixture
def policy(settings: SettingsWrapper) -> Any:
    """Set the project default: ``policy(RETENTION_KEEP_LAST=3, ...)``."""

    def configure(**retention: str | int | None) -> None:
        settings.DUAL_STORAGE = {**MOTO_SETTINGS, **retention}

    configure()
    return configure


def checkpoint(
    epoch: int | None = None,
    *,
    job: str = JOB,
    size: int = 100,
    metrics: dict[str, Any] | None = None,
    pinned: bool = False,
) -> TrainingCheckpoint:
    """A row whose file is a key string (nothing is uploaded)."""
    name = f"epoch_{epoch}" if epoch is not None else f"ckpt-{uuid.uuid4().hex[:6]}"
    return TrainingCheckpoint.objects.create(
        name=name,
        job_id=job,
        epoch=epoch,
        size=size,
        metrics=metrics or {},
        pinned=pinned,
        file=f"jobs/{job}/{uuid.uuid4().hex[:12]}/{name}.pt",
    )


def only_job(plan: RetentionPlan, job: str = JOB) -> JobPlan:
    (job_plan,) = (j for j in plan.jobs if j.job_id == job)
    return job_plan


def kept(job: JobPlan) -> dict[str, tuple[str, ...]]:
    """``{row name: reasons}`` of the kept rows."""
    return {k.checkpoint.name: k.reasons for k in job.kept}


def deleted(job: JobPlan) -> list[str]:
    return [row.name for row in job.delete]


# -- the rules -----------------------------------------------------------------------------


def test_keep_last_keeps_the_newest_epochs(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=2)
    for epoch in (3, 1, 5, 2, 4):  # created out of order: the epoch decides
        checkpoint(epoch, size=10 * epoch)
    job = only_job(plan_retention())
    assert kept(job) == {"epoch_5": ("last 2", "newest"), "epoch_4": ("last 2",)}
    assert deleted(job) == ["epoch_3", "epoch_2", "epoch_1"]
    assert job.bytes_freed == 30 + 20 + 10
    assert TrainingCheckpoint.objects.count() == 5  # planning deletes nothing


def test_rows_without_an_epoch_go_by_creation_and_rank_below_epochs(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=2)
    early, late = checkpoint(), checkpoint()
    now = timezone.now()
    # created_at, not the id, orders rows without an epoch.
    TrainingCheckpoint.objects.filter(pk=early.pk).update(created_at=now)
    TrainingCheckpoint.objects.filter(pk=late.pk).update(created_at=now - timedelta(hours=1))
    job = only_job(plan_retention())
    assert list(kept(job)) == [early.name, late.name]
    checkpoint(1)
    job = only_job(plan_retention())
    assert kept(job) == {"epoch_1": ("last 2", "newest"), early.name: ("last 2",)}
    assert deleted(job) == [late.name]


@pytest.mark.parametrize(
    ("mode", "metric", "values", "best"),
    [
        ("min", "val_loss", [0.9, 0.2, 0.5, 0.1, 0.7], ["epoch_4", "epoch_2"]),
        ("max", "accuracy", [0.6, 0.9, 0.8, 0.1, 0.7], ["epoch_2", "epoch_3"]),
    ],
)
def test_keep_best_by_the_metric(
    policy: Any, mode: str, metric: str, values: list[float], best: list[str]
) -> None:
    policy(RETENTION_KEEP_BEST=2, RETENTION_METRIC=metric, RETENTION_METRIC_MODE=mode)
    for epoch, value in enumerate(values, start=1):
        checkpoint(epoch, metrics={metric: value, "other": -value})
    job = only_job(plan_retention())
    reason = f"best 2 by {metric}"
    assert kept(job) == {"epoch_5": ("newest",), best[0]: (reason,), best[1]: (reason,)}
    assert len(job.delete) == 2
    assert job.policy.describe().startswith(f"keep best 2 by {metric} ({mode}: ")


def test_rows_without_a_numeric_metric_are_never_best(policy: Any) -> None:
    policy(RETENTION_KEEP_BEST=3, RETENTION_METRIC="val_loss")
    values: list[dict[str, Any]] = [
        {"val_loss": "0.01"},
        {"val_loss": None},
        {"val_loss": True},
        {},
        {"val_loss": 0.5},
    ]
    for epoch, metrics in enumerate(values, start=1):
        checkpoint(epoch, metrics=metrics)
    checkpoint(6, metrics={"loss": 0.0})
    job = only_job(plan_retention())
    assert kept(job) == {"epoch_6": ("newest",), "epoch_5": ("best 3 by val_loss",)}
    assert deleted(job) == ["epoch_4", "epoch_3", "epoch_2", "epoch_1"]


def test_a_tie_on_the_metric_goes_to_the_newer_row(policy: Any) -> None:
    policy(RETENTION_KEEP_BEST=1, RETENTION_METRIC="val_loss")
    for epoch in (1, 2, 3):
        checkpoint(epoch, metrics={"val_loss": 0.5 if epoch < 3 else 0.9})
    assert kept(only_job(plan_retention())) == {
        "epoch_3": ("newest",),
        "epoch_2": ("best 1 by val_loss",),
    }


def test_pinned_rows_are_kept(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=1)
    checkpoint(1, pinned=True)
    checkpoint(2)
    checkpoint(3, pinned=True)
    job = only_job(plan_retention())
    assert kept(job) == {"epoch_3": ("last 1", "pinned", "newest"), "epoch_1": ("pinned",)}
    assert deleted(job) == ["epoch_2"]


def test_the_newest_is_always_kept(policy: Any) -> None:
    policy(RETENTION_KEEP_BEST=1, RETENTION_METRIC="val_loss")
    checkpoint(1, metrics={"val_loss": 0.1})
    checkpoint(2, metrics={"val_loss": 0.5})
    checkpoint(3, metrics={"val_loss": 9.0})  # the worst, and the newest
    job = only_job(plan_retention())
    assert kept(job) == {"epoch_3": ("newest",), "epoch_1": ("best 1 by val_loss",)}
    assert deleted(job) == ["epoch_2"]


@pytest.mark.parametrize("retention", [{}, {"RETENTION_KEEP_BEST": 0}])
def test_no_policy_deletes_nothing(policy: Any, retention: dict[str, int]) -> None:
    policy(**retention)
    for epoch in (1, 2, 3):
        checkpoint(epoch)
    job = only_job(plan_retention())
    assert job.skipped == NO_POLICY
    assert job.delete == () and job.bytes_freed == 0
    assert kept(job) == {
        "epoch_3": ("no policy", "newest"),
        "epoch_2": ("no policy",),
        "epoch_1": ("no policy",),
    }
    text = run("dualstorage_retention")
    assert f"Job {JOB!r}: keep everything [project default]" in text
    assert f"  {NO_POLICY}." in text
    assert "Deleted 0 checkpoint(s)" in text
    assert TrainingCheckpoint.objects.count() == 3


def test_keep_best_without_any_metric_deletes_nothing(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=1)
    RetentionPolicy.objects.create(job_id=JOB, keep_best=2)  # no metric here or in settings
    for epoch in (1, 2, 3):
        checkpoint(epoch)
    job = only_job(plan_retention())
    assert job.skipped is not None and "no metric is set" in job.skipped
    assert job.delete == ()


def test_the_job_policy_beats_the_default_and_empty_fields_fall_back(policy: Any) -> None:
    policy(
        RETENTION_KEEP_LAST=3,
        RETENTION_KEEP_BEST=1,
        RETENTION_METRIC="accuracy",
        RETENTION_METRIC_MODE="max",
    )
    for job in (JOB, "other"):
        for epoch, accuracy in enumerate([0.9, 0.1, 0.2, 0.3, 0.4], start=1):
            checkpoint(epoch, job=job, metrics={"accuracy": accuracy})
    # keep_last overridden; keep_best, metric and metric_mode come from the default.
    RetentionPolicy.objects.create(job_id=JOB, keep_last=1)
    plan = plan_retention()
    own, default = only_job(plan, JOB), only_job(plan, "other")
    assert (
        own.policy.source == "job policy (keep_best, metric, metric_mode from the project default)"
    )
    assert kept(own) == {"epoch_5": ("last 1", "newest"), "epoch_1": ("best 1 by accuracy",)}
    assert default.policy.source == "project default"
    assert list(kept(default)) == ["epoch_5", "epoch_4", "epoch_3", "epoch_1"]
    # Every field set on the row: the default plays no part.
    RetentionPolicy.objects.filter(job_id=JOB).update(
        keep_last=2, keep_best=1, metric="accuracy", metric_mode="min"
    )
    own = only_job(plan_retention(JOB))
    assert own.policy.source == "job policy"
    assert kept(own) == {
        "epoch_5": ("last 2", "newest"),
        "epoch_4": ("last 2",),
        "epoch_2": ("best 1 by accuracy",),
    }


def test_plan_retention_of_one_job_and_of_a_bad_job_id(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=1)
    checkpoint(1)
    checkpoint(1, job="other")
    assert [job.job_id for job in plan_retention(JOB).jobs] == [JOB]
    assert plan_retention("no-such-job").jobs == ()
    with pytest.raises(InvalidKey, match=r"Invalid job_id '\.\./x'"):
        plan_retention("../x")


def test_a_policy_keeping_the_best_needs_a_metric(policy: Any) -> None:
    row = RetentionPolicy(job_id=JOB, keep_best=2)
    with pytest.raises(ValidationError) as caught:
        row.full_clean()
    assert "metric" in caught.value.message_dict
    policy(RETENTION_METRIC="val_loss")  # the default names one: fine
    row.full_clean()
    with pytest.raises(ValidationError) as caught:
        RetentionPolicy(job_id="../x", keep_last=0).full_clean()
    assert set(caught.value.message_dict) == {"job_id", "keep_last"}


# -- applying --------------------------------------------------------------------------------


def test_apply_deletes_only_rows_still_planned_and_unpinned(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=1)
    rows = {epoch: checkpoint(epoch, size=epoch) for epoch in (1, 2, 3, 4, 5)}
    plan = plan_retention()
    assert deleted(only_job(plan)) == ["epoch_4", "epoch_3", "epoch_2", "epoch_1"]
    TrainingCheckpoint.objects.filter(pk=rows[4].pk).update(pinned=True)
    rows[3].delete()
    RetentionPolicy.objects.create(job_id=JOB, keep_last=3)  # epoch 2 is kept now
    result = apply_retention(plan)
    assert [(item.id, item.checkpoint.name) for item in result.deleted] == [(rows[1].pk, "epoch_1")]
    assert {item.checkpoint.name: item.reason for item in result.spared} == {
        "epoch_4": "pinned since the plan was made",
        "epoch_3": "already deleted",
        "epoch_2": "no longer planned for deletion",
    }
    assert result.bytes_freed == 1
    assert set(TrainingCheckpoint.objects.values_list("name", flat=True)) == {
        "epoch_5",
        "epoch_4",
        "epoch_2",
    }


def test_a_plan_as_previewed_deletes_only_the_rows_shown(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=1)
    rows = [checkpoint(epoch) for epoch in (1, 2, 3, 4)]
    other = checkpoint(1, job="other")
    shown = {row.pk for row in (rows[0], rows[1], rows[3], other)}  # 4 is kept by the rules
    plan = plan_as_previewed([JOB], shown)
    assert [row.name for row in plan.delete] == ["epoch_4", "epoch_2", "epoch_1"]
    rows[1].delete()
    result = apply_retention(plan)
    assert [item.id for item in result.deleted] == [rows[0].pk]
    assert {item.checkpoint.name: item.reason for item in result.spared} == {
        "epoch_4": "no longer planned for deletion",
        "epoch_2": "already deleted",
    }
    names = TrainingCheckpoint.objects.filter(job_id=JOB).values_list("name", flat=True)
    assert set(names) == {"epoch_3", "epoch_4"}
    assert TrainingCheckpoint.objects.filter(pk=other.pk).exists()


# -- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize("job", ["../x", "a/b", "", ".", "nul\x00", "zero\u200bwidth"])
def test_command_refuses_a_job_that_cannot_be_a_key_segment(policy: Any, job: str) -> None:
    policy(RETENTION_KEEP_LAST=1)
    checkpoint(1)
    with pytest.raises(CommandError, match=r"Invalid --job") as caught:
        call_command("dualstorage_retention", "--job", job, stdout=StringIO())
    assert repr(job) in str(caught.value)
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("dualstorage_retention", "--job", job, "--json", stdout=StringIO(), stderr=err)
    report = json.loads(err.getvalue())["error"]
    assert report["type"] == "InvalidKey" and repr(job) in report["message"]
    assert TrainingCheckpoint.objects.count() == 1


def test_command_refuses_an_unknown_job(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=1)
    with pytest.raises(CommandError, match="No training checkpoints of job 'nope'"):
        call_command("dualstorage_retention", "--job", "nope", stdout=StringIO())


def test_command_with_no_checkpoints_says_so(policy: Any) -> None:
    policy(RETENTION_KEEP_LAST=1)
    assert "No training checkpoints in the database." in run("dualstorage_retention")
    report = run_json("dualstorage_retention")
    assert (report["jobs"], report["deleted"], report["bytes_freed"]) == ([], [], 0)
