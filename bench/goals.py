"""Issue 5's goals, judged on one run's results: a line per goal, met or missed.

Each goal names the rows it is judged on; a goal with none of its rows in the run (a
section left out with ``--only``) is "not run". Diagnostic rows never count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .browser_uploads import Measured
from .contenders import DIAGNOSTIC, OURS
from .floor import Floor
from .links import OPERATION as PRESIGN
from .migration import OPERATION as MIGRATE
from .report import Result, best_peer_speed, size_label
from .schemas import OPERATION as SCHEMA
from .wan import Row as WanRow

TRANSFER_RATIO = 0.95
WAN_RATIO = 1.0  # issue 15: at 100-300 ms, ours at least as fast as the fastest peer
FLOOR_SHARE = 0.90  # issue 15: a verified transfer at >= 90 % of this machine's floor
SCHEMA_RATIO = 20.0
PRESIGNS_PER_SECOND = 20_000
MIGRATION_RATIO = 0.5
# "Direct must leave the Django worker nearly idle": the web process's CPU for a direct
# upload at most this share of the form upload's, same file. Its work is a few JSON
# requests per file (signing, completing, polls), while the form's grows with every byte
# (parse, temp file, copy to the store, SHA-256); at 10 %, one web process serves ten
# direct uploads for the CPU of one through the form.
BROWSER_CPU_SHARE = 0.10
RAW_PRESIGN = "boto3 generate_presigned_url"
RAW_GET = "boto3 get_object"


@dataclass(frozen=True)
class Verdict:
    goal: str
    figure: str
    met: bool | None  # None: not run


def _ours(group: list[Result]) -> list[Result]:
    return [
        r
        for r in group
        if r.contender.startswith(OURS) and DIAGNOSTIC not in r.contender and r.speed is not None
    ]


def _groups(results: list[Result], operation: str) -> dict[int, list[Result]]:
    groups: dict[int, list[Result]] = {}
    for result in results:
        if result.operation == operation:
            groups.setdefault(result.size, []).append(result)
    return groups


def _transfer(results: list[Result], operation: str) -> Verdict:
    goal = f"{operation} >= {TRANSFER_RATIO:.2f}x the fastest peer (every size, every path)"
    figures, met = [], True
    for size, group in _groups(results, operation).items():
        best = best_peer_speed(group)
        for row in _ours(group):
            ratio = (row.speed or 0) / best if best else 0.0
            figures.append(f"{row.contender} {size_label(size)} {ratio:.2f}x")
            met = met and ratio >= TRANSFER_RATIO
    return Verdict(goal, "; ".join(figures) or "-", met if figures else None)


def _rate(
    results: list[Result], operation: str, goal: str, judge: Callable[[Result, float], bool]
) -> Verdict:
    """``judge(our_row, raw_peer_speed)`` for every row of ours in ``operation``."""
    group = _groups(results, operation).get(0, [])
    raw = next((r.speed for r in group if r.contender in (RAW_PRESIGN, RAW_GET)), None)
    ours = _ours(group)
    if not ours or raw is None:
        return Verdict(goal, "-", None)
    figures = [f"{r.contender} {r.speed:,.0f}/s = {(r.speed or 0) / raw:.1f}x raw" for r in ours]
    return Verdict(goal, "; ".join(figures), all(judge(r, raw) for r in ours))


def _migration(results: list[Result]) -> Verdict:
    """Ours against the fastest peer on the many-small-objects rows (objects/s)."""
    goal = f"migration of small objects >= {MIGRATION_RATIO:.2f}x the fastest peer (objects/s)"
    groups: dict[str, list[Result]] = {}
    for result in results:
        if result.operation.startswith(MIGRATE) and result.per_run:
            groups.setdefault(result.operation, []).append(result)
    figures, met = [], True
    for operation, group in groups.items():
        best = best_peer_speed(group)
        for row in _ours(group):
            ratio = (row.speed or 0) / best if best else 0.0
            figures.append(f"{operation}: ours {row.speed:,.0f}/s = {ratio:.2f}x")
            met = met and ratio >= MIGRATION_RATIO
    return Verdict(goal, "; ".join(figures) or "-", met if figures else None)


def _browser_idle(rows: list[Measured] | None) -> Verdict:
    """The direct upload's web-process CPU against the form upload's (same file).

    Judged on ``CHECK: "task"`` when it was measured: that configuration takes the
    read-back (a full read and SHA-256 of the object) out of the web process, which is
    what big files need. ``CHECK: "thread"`` is reported in the same line, with and
    without the read-back its web process ran.
    """
    goal = (
        f"direct browser upload leaves Django nearly idle: web CPU <= "
        f"{BROWSER_CPU_SHARE:.0%} of the form upload's"
    )
    form = next((r for r in rows or [] if r.case == "form" and r.ok), None)
    direct = [r for r in rows or [] if r.case == "direct"]
    measured = {r.check: r for r in direct if r.ok}
    if form is None or not form.django_cpu or not measured:
        return Verdict(goal, "-", None)
    base = form.django_cpu
    judged = measured.get("task") or measured["thread"]
    figures = [f"form {base:.2f} s"]
    for row in direct:
        if not row.ok or row.django_cpu is None:
            figures.append(f'CHECK "{row.check}": {row.note}')
            continue
        figure = f'CHECK "{row.check}": {row.django_cpu:.2f} s = {row.django_cpu / base:.1%}'
        if row.worker_cpu is not None:
            figure += f" (db_worker {row.worker_cpu:.2f} s)"
        if row.readback_cpu is not None:
            without = row.django_cpu - row.readback_cpu
            figure += (
                f" (read-back {row.readback_cpu:.2f} s of it; without it "
                f"{without:.2f} s = {without / base:.1%})"
            )
        figures.append(figure + (" <- judged" if row is judged else ""))
    assert judged.django_cpu is not None
    return Verdict(goal, "; ".join(figures), judged.django_cpu <= BROWSER_CPU_SHARE * base)


def _floors(found: list[Floor] | None) -> list[Verdict]:
    """Issue 15: every verified transfer of ours at >= FLOOR_SHARE of its floor, and
    never slower than the faster raw boto3 row (which verifies nothing)."""
    floor_goal = f"verified transfers >= {FLOOR_SHARE:.0%} of the floor computed in the run"
    raw_goal = "verified transfers never slower than raw boto3 (unverified)"
    if not found:
        return [Verdict(floor_goal, "-", None), Verdict(raw_goal, "-", None)]
    shares, versus_raw = [], []
    floor_met = raw_met = True
    for floor in found:
        where = f"{floor.operation} {size_label(floor.size)}"
        for path, seconds in floor.ours.items():
            shares.append(f"{path} {where} {floor.share(path):.0%}")
            floor_met = floor_met and floor.share(path) >= FLOOR_SHARE
            if floor.raw_boto3 is not None:
                name, raw = floor.raw_boto3
                versus_raw.append(f"{path} {where} {seconds:.3f} s vs {name} {raw:.3f} s")
                raw_met = raw_met and seconds <= raw
    return [
        Verdict(floor_goal, "; ".join(shares), floor_met),
        Verdict(raw_goal, "; ".join(versus_raw) or "-", raw_met if versus_raw else None),
    ]


def _wan(rows: list[WanRow] | None) -> list[Verdict]:
    """Issue 15: at each WAN profile, ours >= 1.0x the fastest peer for the large file
    and for the folder, up and down (a verdict per profile and part)."""
    groups: dict[tuple[str, bool], list[WanRow]] = {}
    for row in rows or []:
        groups.setdefault((row.profile, bool(row.files)), []).append(row)
    verdicts = []
    for (profile, folder), group in groups.items():
        what = "folder" if folder else "large file"
        goal = f"WAN {profile}, {what}: ours >= {WAN_RATIO:.1f}x the fastest peer, up and down"
        figures, met = [], True
        for operation in ("upload", "download"):
            rows_of = [r for r in group if r.operation == operation]
            ours = next((r for r in rows_of if r.contender == OURS), None)
            peers = [r for r in rows_of if r.contender != OURS and r.speed is not None]
            if ours is None or ours.speed is None or not peers:
                figures.append(f"{operation}: {ours.note if ours else 'no row'}")
                met = False
                continue
            best = max(peers, key=lambda r: r.speed or 0.0)
            ratio = ours.speed / (best.speed or 1.0)
            figures.append(
                f"{operation} {ours.size} {ratio:.2f}x ({ours.seconds:.1f} s, "
                f"{ours.requests or 0:,} requests; {best.contender} {best.seconds:.1f} s, "
                f"{best.requests or 0:,})"
            )
            met = met and ratio >= WAN_RATIO
        verdicts.append(Verdict(goal, "; ".join(figures), met))
    return verdicts or [Verdict(f"WAN: ours >= {WAN_RATIO:.1f}x the fastest peer", "-", None)]


def judge(
    results: list[Result],
    memory_failures: list[str] | None,
    memory_sizes: str = "",
    *,
    browser: list[Measured] | None = None,
    floors: list[Floor] | None = None,
    wan: list[WanRow] | None = None,
) -> list[Verdict]:
    """Every goal; ``memory_failures`` lists the memory paths that did not pass at
    ``memory_sizes`` (None: the memory section did not run); ``browser``: the browser
    section's rows (None: not run); ``floors``: the verified transfers' floors;
    ``wan``: the WAN section's rows (None: not run)."""
    verdicts = [_transfer(results, "upload"), _transfer(results, "download")]
    verdicts += _floors(floors)
    verdicts.append(
        _rate(
            results,
            PRESIGN,
            f"presign >= {PRESIGNS_PER_SECOND:,}/s and no slower than raw boto3",
            lambda r, raw: (r.speed or 0) >= max(PRESIGNS_PER_SECOND, raw),
        )
    )
    verdicts.append(
        _rate(
            results,
            SCHEMA,
            f"get_schema (default cache) >= {SCHEMA_RATIO:.0f}x a raw GET",
            lambda r, raw: r.contender != OURS or (r.speed or 0) >= SCHEMA_RATIO * raw,
        )
    )
    memory_goal = "peak RSS under 150 MB and flat, every path"
    if memory_failures is None:
        verdicts.append(Verdict(memory_goal, "-", None))
    else:
        failed = ", ".join(memory_failures)
        figure = f"{memory_sizes}: " + ("every path PASS" if not memory_failures else failed)
        verdicts.append(Verdict(memory_goal, figure, not memory_failures))
    verdicts.append(_migration(results))
    verdicts.append(_browser_idle(browser))
    verdicts += _wan(wan)
    return verdicts


def format_goals(verdicts: list[Verdict]) -> str:
    marks = {True: "MET", False: "MISSED", None: "not run"}
    lines = ["Goals:"]
    for verdict in verdicts:
        lines.append(f"  [{marks[verdict.met]}] {verdict.goal}: {verdict.figure}")
    return "\n".join(lines)
