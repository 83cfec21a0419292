"""bench.goals judges issue 5's goals from a run's rows: met, missed, or not run."""

from __future__ import annotations

import pytest

from bench.browser_uploads import Measured
from bench.cpu import CpuSample
from bench.floor import floors
from bench.goals import Verdict, judge
from bench.links import OPERATION as PRESIGN
from bench.report import MB, Result
from bench.schemas import OPERATION as SCHEMA
from bench.wan import Row as WanRow

SIZE = 500 * MB


def transfer(operation: str, contender: str, seconds: float) -> Result:
    return Result(operation, SIZE, contender, seconds=[seconds])


def rate(operation: str, contender: str, per_second: float) -> Result:
    return Result(operation, 0, contender, seconds=[1000 / per_second], per_run=1000)


def verdicts(results: list[Result], memory: list[str] | None = None) -> dict[str, bool | None]:
    return {v.goal.split(" ")[0]: v.met for v in judge(results, memory, "256MiB")}


def test_a_transfer_goal_is_judged_on_every_path_of_ours_against_the_fastest_peer() -> None:
    rows = [
        transfer("upload", "ours", 1.0),
        transfer("upload", "ours FileField save", 1.04),  # 0.96x the peer
        transfer("upload", "s5cmd", 1.0),
        transfer("upload", "boto3 default", 2.0),
        transfer("download", "ours", 1.0),
        transfer("download", "ours download command", 1.2),  # 0.83x
        transfer("download", "s5cmd", 1.0),
    ]
    judged = verdicts(rows)
    assert judged["upload"] is True
    assert judged["download"] is False


def test_diagnostic_rows_never_count() -> None:
    rows = [
        transfer("download", "ours", 2.0),
        transfer("download", "ours without SHA-256 (diagnostic)", 1.0),
        transfer("download", "s5cmd", 1.0),
    ]
    (download,) = [v for v in judge(rows, None) if v.goal.startswith("download")]
    assert download.met is False and "diagnostic" not in download.figure


def test_rate_goals_need_the_floor_and_the_raw_peer() -> None:
    fast = [rate(PRESIGN, "ours", 40_000), rate(PRESIGN, "boto3 generate_presigned_url", 5_000)]
    slow = [rate(PRESIGN, "ours", 19_000), rate(PRESIGN, "boto3 generate_presigned_url", 5_000)]
    behind_raw = [
        rate(PRESIGN, "ours", 25_000),
        rate(PRESIGN, "boto3 generate_presigned_url", 30_000),
    ]
    assert verdicts(fast)["presign"] is True
    assert verdicts(slow)["presign"] is False
    assert verdicts(behind_raw)["presign"] is False


def test_the_schema_goal_is_the_default_cache_against_a_raw_get() -> None:
    rows = [
        rate(SCHEMA, "ours", 10_000),
        rate(SCHEMA, "ours (revalidate every read)", 400),  # not held to 20x
        rate(SCHEMA, "boto3 get_object", 300),
    ]
    assert verdicts(rows)["get_schema"] is True
    rows[0] = rate(SCHEMA, "ours", 5_000)  # 16.7x
    assert verdicts(rows)["get_schema"] is False


def test_sections_left_out_are_not_run_and_memory_failures_are_named() -> None:
    judged = verdicts([], memory=None)
    assert set(judged.values()) == {None}
    (memory,) = [v for v in judge([], ["admin: add-form POST"], "2GiB") if "RSS" in v.goal]
    assert memory.met is False and "admin: add-form POST" in memory.figure
    assert verdicts([], memory=[])["peak"] is True


def browser_rows(form: float, thread: float, readback: float, task: float | None) -> list[Measured]:
    gib = 1024**3
    rows = [
        Measured("form", "", gib, seconds=10.0, django_cpu=form),
        Measured("direct", "thread", gib, seconds=8.0, django_cpu=thread, readback_cpu=readback),
    ]
    if task is not None:
        rows.append(Measured("direct", "task", gib, seconds=8.0, django_cpu=task, worker_cpu=2.0))
    return rows


def browser_verdict(rows: list[Measured] | None) -> Verdict:
    (verdict,) = [v for v in judge([], None, browser=rows) if v.goal.startswith("direct browser")]
    return verdict


def test_the_browser_goal_is_judged_on_check_task_and_reports_the_thread_read_back() -> None:
    met = browser_verdict(browser_rows(form=8.0, thread=2.4, readback=2.2, task=0.3))
    assert met.met is True  # 0.3 / 8.0 = 3.8%
    assert 'CHECK "thread": 2.40 s = 30.0%' in met.figure
    assert "without it 0.20 s = 2.5%" in met.figure
    assert 'CHECK "task": 0.30 s = 3.8% (db_worker 2.00 s) <- judged' in met.figure
    assert browser_verdict(browser_rows(8.0, 2.4, 2.2, task=0.9)).met is False  # 11%


def test_the_browser_goal_falls_back_to_check_thread_whole_and_needs_the_form_row() -> None:
    # Without a task row, the thread row is judged with its read-back counted.
    assert browser_verdict(browser_rows(8.0, thread=2.4, readback=2.2, task=None)).met is False
    assert browser_verdict(browser_rows(8.0, thread=0.5, readback=0.3, task=None)).met is True
    failed_form = browser_rows(8.0, 2.4, 2.2, 0.3)
    failed_form[0].note = "error: boom"
    assert browser_verdict(failed_form).met is None
    assert browser_verdict(None).met is None


def timed(operation: str, contender: str, seconds: float, client: float, server: float) -> Result:
    return Result(operation, SIZE, contender, seconds=[seconds], cpu=[CpuSample(client, server)])


def test_the_floor_counts_the_fastest_peer_the_server_and_one_hash_over_the_cores() -> None:
    rows = [
        timed("download", "ours", 0.60, 0.60, 0.55),
        timed("download", "ours without SHA-256 (diagnostic)", 0.40, 0.25, 0.5),
        timed("download", "rclone", 0.50, 0.30, 0.55),
        timed("download", "boto3 tuned", 0.57, 0.50, 0.60),
    ]
    (floor,) = floors(rows, sha256_mb_per_s=1000, cores=2)
    assert floor.peer == "rclone"  # the fastest peer, never a row of ours
    assert floor.seconds == pytest.approx((0.30 + 0.55 + 0.5) / 2)  # 500 MB at 1,000 MB/s
    assert list(floor.ours) == ["ours"]  # the diagnostic row verifies nothing
    assert floor.share("ours") == pytest.approx(0.675 / 0.60)
    share, versus_raw = _floor_verdicts(rows)
    assert share.met is True and "ours download 500 MB 113%" in share.figure
    assert versus_raw.met is False  # 0.60 s is slower than raw boto3's 0.57 s
    assert "boto3 tuned 0.570 s" in versus_raw.figure


def test_a_peer_faster_than_the_cpu_bound_sets_the_floor_and_a_share_below_90_misses() -> None:
    rows = [
        timed("upload", "ours", 1.30, 0.9, 4.8),
        timed("upload", "boto3 tuned", 1.0, 0.1, 0.1),
    ]
    (floor,) = floors(rows, sha256_mb_per_s=1000, cores=2)
    assert floor.seconds == 1.0  # (0.1 + 0.1 + 0.5) / 2 is below the peer's own time
    verdict = _floor_verdicts(rows)[0]
    assert verdict.met is False and "77%" in verdict.figure


def _floor_verdicts(rows: list[Result]) -> list[Verdict]:
    found = floors(rows, sha256_mb_per_s=1000, cores=2)
    return [v for v in judge(rows, None, floors=found) if v.goal.startswith("verified")]


def wan_row(profile: str, operation: str, contender: str, seconds: float, files: int = 0) -> WanRow:
    return WanRow(
        profile,
        operation,
        "2,000 x 256 KiB" if files else "1 GiB",
        contender,
        seconds,
        requests=2000 if files else 66,
        bytes_per_run=2000 * 256 * 1024 if files else 1024**3,
        files=files,
    )


def test_a_wan_goal_per_profile_and_part_needs_ours_at_least_as_fast_both_ways() -> None:
    rows = [
        wan_row("R2", "upload", "ours", 5.0),
        wan_row("R2", "upload", "s5cmd", 6.0),
        wan_row("R2", "download", "ours", 5.0),
        wan_row("R2", "download", "boto3 default", 4.9),  # ours 0.98x: missed
        wan_row("R2", "upload", "ours", 3.0, files=2000),
        wan_row("R2", "upload", "s5cmd", 3.0, files=2000),  # a tie meets 1.0x
        wan_row("R2", "download", "ours", 2.0, files=2000),
        wan_row("R2", "download", "rclone", 9.0, files=2000),
    ]
    judged = {v.goal: v for v in judge([], None, wan=rows) if v.goal.startswith("WAN")}
    large = judged["WAN R2, large file: ours >= 1.0x the fastest peer, up and down"]
    folder = judged["WAN R2, folder: ours >= 1.0x the fastest peer, up and down"]
    assert large.met is False and "download 1 GiB 0.98x" in large.figure
    assert "boto3 default 4.9 s" in large.figure
    assert folder.met is True and "upload 2,000 x 256 KiB 1.00x" in folder.figure
    assert [v.met for v in judge([], None) if v.goal.startswith("WAN")] == [None]
