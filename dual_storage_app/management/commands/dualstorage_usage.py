"""What each store, bucket and artifact kind holds, its growth and its monthly cost."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from dual_storage_app.management._common import StorageCommand, command_errors, format_size
from dual_storage_app.usage import GROWTH_DAYS, UsageReport, usage_report


def _money(value: float) -> str:
    """``$1,234.50``; amounts under a cent keep their significant digits (``$0.000062``)."""
    return f"${value:,.2f}" if value == 0 or abs(value) >= 0.01 else f"${value:.2g}"


def report_lines(report: UsageReport) -> list[str]:
    """The human-readable table of ``report``."""
    header = f"{'kind':<12} {'store':<9} {'bucket':<24} {'objects':>8} {'bytes':>10}"
    header += f" {'+' + str(GROWTH_DAYS) + ' days':>10}"
    if report.scanned:
        header += f" {'in store':>10} {'difference':>11}"
    lines = [header]
    for kind in report.kinds:
        line = (
            f"{kind.kind:<12} {kind.store:<9} {kind.bucket:<24} {kind.objects:>8} "
            f"{format_size(kind.bytes):>10} {format_size(kind.added_bytes):>10}"
        )
        if kind.scanned_bytes is not None and kind.difference is not None:
            line += f" {format_size(kind.scanned_bytes):>10} {kind.difference:>+11} obj"
        lines.append(line)
    lines.append("")
    for cost in report.stores.values():
        prices = cost.prices
        lines.append(
            f"{cost.store} ({cost.provider}): {format_size(cost.bytes)}, "
            f"{_money(cost.total)}/month (storage {_money(cost.storage)}, "
            f"writes {_money(cost.writes)}, reads {_money(cost.reads)} and egress "
            f"{_money(cost.egress)} for {cost.links} link(s) to {format_size(cost.link_bytes)})"
        )
        lines.append(
            f"  prices: ${prices.storage_gb_month:g}/GB-month "
            f"({cost.price_origins['storage_gb_month']}), "
            f"Class A ${prices.class_a_per_million:g}/M, "
            f"Class B ${prices.class_b_per_million:g}/M, egress ${prices.egress_gb:g}/GB"
        )
    lines.append("")
    lines.append(
        f"All on the external store: {_money(report.all_external)}/month; dual layout: "
        f"{_money(report.dual)}/month; saving {_money(report.saving)}/month "
        f"({report.saving_percent:.0f}%)."
    )
    lines += report.notes
    return lines


class Command(StorageCommand):
    help = (
        "Usage and monthly cost of both stores: per artifact kind the bucket, objects and "
        "bytes in the catalog and those added in the last 30 days (--scan: also list each "
        "bucket and show the difference), each store's cost at its prices (the provider's "
        "list prices unless *_STORAGE_PRICE_* settings say otherwise; the output names "
        "them), and the seed's comparison from your data: everything on the external "
        "store vs the dual layout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--scan",
            action="store_true",
            help="Also list every bucket (one LIST per 1,000 objects) and show the difference.",
        )

    def handle(self, *args: Any, scan: bool, **options: Any) -> None:
        with command_errors():
            report = usage_report(scan=scan)
        self.emit(report.as_dict(), report_lines(report))
