"""bench.scale's arithmetic and table: time per object or per page, growth from the
smallest count, and the lines printed (no server, no Django)."""

from __future__ import annotations

import hashlib

from bench.scale import (
    ADMIN_FIRST,
    ADOPT,
    FULL_COUNTS,
    OBJECT_SIZE,
    PAGE,
    QUICK_COUNTS,
    READS_UP_TO,
    SETUP,
    VERIFY,
    Row,
    format_table,
    growth,
    object_body,
    object_key,
    object_sha256,
    parse_args,
    shorten,
    tenths,
)


def test_time_per_object_is_in_microseconds_and_per_page_in_milliseconds() -> None:
    verify = Row(10_000, VERIFY, 22.0, 10_000)
    page = Row(10_000, ADMIN_FIRST, 0.1155, 1, unit=PAGE)
    assert verify.per_item == 22.0 / 10_000
    assert verify.per_item_text == "2,200.0 us/object"
    assert page.per_item_text == "115.5 ms/page"
    assert Row(1, VERIFY, None, 1, note="not run").per_item is None
    assert Row(1, VERIFY, None, 1).per_item_text == ""
    assert Row(0, VERIFY, 1.0, 0).per_item is None  # nothing handled: no rate


def test_growth_is_each_rows_cost_per_item_over_the_smallest_counts() -> None:
    rows = [
        Row(100_000, VERIFY, 300.0, 100_000),  # 3 ms each, listed first on purpose
        Row(1_000, VERIFY, 2.0, 1_000),  # 2 ms each: the base
        Row(10_000, VERIFY, 20.0, 10_000),  # linear
        Row(1_000, ADMIN_FIRST, 0.05, 1, unit=PAGE),
        Row(100_000, ADMIN_FIRST, 0.5, 1, unit=PAGE),  # 10x the page: not flat
        Row(100_000, ADOPT, None, 100_000, note="not run"),
    ]
    ratios = growth(rows)
    assert ratios[(VERIFY, 1_000)] == 1.0
    assert round(ratios[(VERIFY, 10_000)], 9) == 1.0
    assert round(ratios[(VERIFY, 100_000)], 9) == 1.5
    assert round(ratios[(ADMIN_FIRST, 100_000)], 9) == 10.0
    assert (ADOPT, 100_000) not in ratios


def test_the_table_has_a_line_per_row_with_its_figures() -> None:
    rows = [
        Row(1_000, "put 1,000 objects", 1.5, 1_000, ours=False),
        Row(1_000, VERIFY, 2.0, 1_000, requests=1_000, request_kinds="GetObject 1,000"),
        Row(100_000, VERIFY, 300.0, 100_000, client_cpu=120.5, server_cpu=90.25),
        Row(100_000, ADOPT, None, 100_000, note="not run: above 10,000 objects"),
    ]
    header, rule, *lines = format_table(rows).splitlines()
    assert [cell.strip() for cell in header.split(" | ")] == [
        "count",
        "operation",
        "wall s",
        "per item",
        "vs smallest",
        "S3 requests",
        "bench CPU s",
        "server CPU s",
        "note",
    ]
    assert set(rule) <= {"-", "+"}
    assert len(lines) == 4
    put, small, large, skipped = ([c.strip() for c in line.split(" | ")] for line in lines)
    assert put[1] == f"put 1,000 objects {SETUP}"
    assert small[:6] == [
        "1,000",
        VERIFY,
        "2.000",
        "2,000.0 us/object",
        "1.00x",
        "1,000 (GetObject 1,000)",
    ]
    assert large[:8] == [
        "100,000",
        VERIFY,
        "300.000",
        "3,000.0 us/object",
        "1.50x",
        "",
        "120.50",
        "90.25",
    ]
    assert skipped[0] == "100,000" and skipped[2:4] == ["", ""]
    assert lines[3].endswith("not run: above 10,000 objects")
    assert lines[2].startswith("100,000 |") and lines[1].startswith("  1,000 |")  # right-aligned


def test_tenths_compare_the_pace_at_the_start_and_at_the_end() -> None:
    # 101 moments: 90 lines 1 ms apart, then 10 lines 4 ms apart
    steady_then_slow = [0.001 * i for i in range(91)] + [0.09 + 0.004 * i for i in range(1, 11)]
    first, last = tenths(steady_then_slow) or (0.0, 0.0)
    assert round(first, 9) == 0.001
    assert round(last, 9) == 0.004
    assert tenths([0.0] * 19) is None


def test_objects_are_small_and_each_different() -> None:
    assert len(object_body(7)) == OBJECT_SIZE == 1024
    assert object_body(7) != object_body(8)
    assert object_sha256(7) == hashlib.sha256(object_body(7)).hexdigest()
    assert object_key(42) == "datasets/scale/obj-0000042.bin"


def test_a_query_is_shortened_to_one_line() -> None:
    sql = (
        'SELECT DISTINCT django_datetime_trunc(\'day\', "dual_storage_app_dataset"."created_at",'
        " 'UTC', 'UTC') AS \"datefield\"\n  FROM \"dual_storage_app_dataset\" WHERE "
        '"dual_storage_app_dataset"."created_at" IS NOT NULL ORDER BY 1 ASC'
    )
    short = shorten(sql)
    assert "\n" not in short and '"' not in short
    assert short.startswith("SELECT DISTINCT django_datetime_trunc('day', created_at,")
    assert short.endswith(
        "FROM dual_storage_app_dataset WHERE created_at IS NOT NULL ORDER BY 1 ASC"
    )
    assert len(shorten("SELECT 1 FROM t WHERE " + "x" * 500)) == 150


def test_counts_and_the_cap_from_the_command_line() -> None:
    assert parse_args([]).counts == list(FULL_COUNTS) == [1_000, 10_000, 100_000]
    assert parse_args(["--quick"]).counts == list(QUICK_COUNTS) == [200, 1_000]
    assert parse_args(["--counts", "500", "5000"]).counts == [500, 5000]
    assert parse_args([]).reads_up_to == READS_UP_TO
    assert parse_args(["--reads-up-to", "0"]).reads_up_to is None
