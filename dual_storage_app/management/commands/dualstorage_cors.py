"""Show, set or check the CORS rule browser uploads need on the external datasets bucket."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from dual_storage_app import cors
from dual_storage_app.management._common import StorageCommand, command_errors, store_and_bucket
from dual_storage_app.store import Store

_KIND = "datasets"  # the only bucket this command works on: external, browser-facing


class Command(StorageCommand):
    help = (
        "Show (default), set or check the CORS rule that lets browsers upload datasets "
        "straight to the external store's datasets bucket with presigned PUT/GET URLs. "
        f"--set puts the rule {cors.RULE_ID!r} and keeps every other rule; --check reads "
        "the rules and sends a real preflight per origin, exiting non-zero on any problem. "
        "Origins: --origin, else settings.DUAL_STORAGE_CORS_ORIGINS, else "
        "settings.CSRF_TRUSTED_ORIGINS. The internal store is never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--show",
            dest="mode",
            action="store_const",
            const="show",
            help="Print the bucket's CORS rules (the default).",
        )
        mode.add_argument(
            "--set",
            dest="mode",
            action="store_const",
            const="set",
            help=f"Put the rule {cors.RULE_ID!r} for the origins, keeping other rules.",
        )
        mode.add_argument(
            "--check",
            dest="mode",
            action="store_const",
            const="check",
            help="Check the rules and a real preflight for each origin.",
        )
        parser.add_argument(
            "--origin",
            dest="origins",
            action="append",
            metavar="URL",
            help="An origin allowed to upload, e.g. https://app.example.com (repeatable; "
            "default: settings.DUAL_STORAGE_CORS_ORIGINS, else CSRF_TRUSTED_ORIGINS).",
        )

    def handle(
        self, *args: Any, mode: str | None, origins: list[str] | None, **options: Any
    ) -> None:
        store, bucket = store_and_bucket(_KIND)
        if store.name != "external":  # the registry says datasets are external; make sure
            raise CommandError(f"{_KIND} are on the {store.name} store; refusing to touch it.")
        with command_errors():
            if mode == "set":
                self._set(store, bucket, origins)
            elif mode == "check":
                self._check(store, bucket, origins)
            else:
                self._show(store, bucket)

    def _where(self, store: Store, bucket: str) -> str:
        return f"bucket {bucket!r} ({store.name} store, {store.config.provider.name})"

    def _show(self, store: Store, bucket: str) -> None:
        rules = cors.current_rules(store, bucket)
        where = self._where(store, bucket)
        lines = [f"{where}: {len(rules)} CORS rule(s)" if rules else f"{where}: no CORS rule"]
        for rule in rules:
            lines += _rule_lines(rule)
        self.emit({"store": store.name, "bucket": bucket, "rules": rules}, lines)

    def _set(self, store: Store, bucket: str, given: list[str] | None) -> None:
        origins, source = cors.resolve_origins(given)
        change = cors.set_rule(store, bucket, origins)
        others = len(change.rules) - 1
        kept = f"; {others} other rule(s) kept" if others else ""
        if change.action == "unchanged":
            head = f"Rule {cors.RULE_ID!r} on {self._where(store, bucket)} is already up to date"
            summary = f"{head}; nothing sent{kept}."
        else:
            diff = []
            if change.origins_added and change.previous is not None:
                diff.append(f"origins added: {', '.join(change.origins_added)}")
            if change.origins_removed:
                diff.append(f"origins removed: {', '.join(change.origins_removed)}")
            detail = f" ({'; '.join(diff)})" if diff else ""
            summary = self.style.SUCCESS(
                f"{change.action.capitalize()} rule {cors.RULE_ID!r} on "
                f"{self._where(store, bucket)}{detail}{kept}."
            )
        self.emit(
            {
                "store": store.name,
                "bucket": bucket,
                "action": change.action,
                "origins": origins,
                "origins_from": source,
                "rule": change.rule,
                "previous": change.previous,
                "rules": change.rules,
            },
            [summary, f"Origins (from {source}): {', '.join(origins)}"],
        )

    def _check(self, store: Store, bucket: str, given: list[str] | None) -> None:
        origins, source = cors.resolve_origins(given)
        rules_checked = cors.supports_rules(store)
        problems = cors.check(store, bucket, origins)
        lines = [f"Checking {self._where(store, bucket)} for {', '.join(origins)} ({source})"]
        if not rules_checked:
            lines.append("Rules not read (GCS: the S3 API does not show them); preflight only.")
        for origin in origins:
            if not any(problem.startswith(f"{origin}: ") for problem in problems):
                lines.append(f"{self.style.SUCCESS('OK  ')} {origin}")
        lines += [f"{self.style.ERROR('FAIL')} {problem}" for problem in problems]
        self.emit(
            {
                "store": store.name,
                "bucket": bucket,
                "origins": origins,
                "origins_from": source,
                "rules_checked": rules_checked,
                "preflight_url": cors.preflight_url(store, bucket),
                "ok": not problems,
                "problems": problems,
            },
            lines,
        )
        if problems:
            raise CommandError(
                f"CORS check of bucket {bucket!r} on the {store.name} store failed: "
                + "; ".join(problems)
                + ". Run `manage.py dualstorage_cors --set` (see docs/cors.md)."
            )


def _rule_lines(rule: dict[str, Any]) -> list[str]:
    """One rule, indented, field by field."""
    rule_id = rule.get("ID")
    name = f"{rule_id!r}" if rule_id else "(no ID)"
    mark = " (ours)" if cors.is_ours(rule) else ""
    lines = [f"- {name}{mark}"]
    for label, key in (
        ("origins", "AllowedOrigins"),
        ("methods", "AllowedMethods"),
        ("headers", "AllowedHeaders"),
        ("expose", "ExposeHeaders"),
    ):
        if rule.get(key):
            lines.append(f"    {label}: {', '.join(map(str, rule[key]))}")
    if rule.get("MaxAgeSeconds"):
        lines.append(f"    max age: {rule['MaxAgeSeconds']} s")
    return lines
