"""Print a presigned GET URL for a dataset (external store only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from dual_storage_app.client import dual_storage
from dual_storage_app.kinds import KINDS, REGISTRY, ArtifactKind, kinds_on
from dual_storage_app.links import command_holder, issue, issued_to
from dual_storage_app.management._common import StorageCommand, command_errors, store_and_bucket
from dual_storage_app.store.transfer import MAX_PRESIGN_SECONDS, validate_expiry

_EXTERNAL_KINDS = kinds_on("external")


class Command(StorageCommand):
    help = (
        "Print a presigned GET URL for a dataset, chosen by --id or --key, and the time it "
        "expires. Only datasets (external store) get URLs: internal artifacts never do."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        self.add_lookup_arguments(parser)
        parser.add_argument(
            "--expires",
            type=int,
            default=3600,
            metavar="SECONDS",
            help=f"Lifetime of the URL, 1 to {MAX_PRESIGN_SECONDS} (7 days); default 3600.",
        )
        parser.add_argument(
            "--kind",
            choices=KINDS,
            default=_EXTERNAL_KINDS[0],
            help=f"Only {', '.join(_EXTERNAL_KINDS)} (external store); internal kinds are refused.",
        )

    def handle(
        self,
        *args: Any,
        id: int | None,
        key: str | None,
        expires: int,
        kind: ArtifactKind,
        **options: Any,
    ) -> None:
        if REGISTRY[kind].is_internal:
            raise CommandError(
                f"Internal artifacts ({kind}) never get a URL: they stay on the private "
                f"internal store. Fetch one with `manage.py dualstorage_download {kind} "
                "--id ID DEST` instead."
            )
        row = self.find_artifact(kind, id, key, required=False)
        key = row.key if row is not None else str(key)
        store, bucket = store_and_bucket(kind)
        with command_errors():
            validate_expiry(expires, store=store.name, bucket=bucket, key=key)
            if row is None:  # an unknown key: make sure it exists before handing out a URL
                store.head(bucket, key)
            # SigV4 signs the current second (X-Amz-Date); the URL dies that + expires.
            expires_at = timezone.now().replace(microsecond=0) + timedelta(seconds=expires)
            with issued_to(command_holder("dualstorage_presign")):
                url = issue(
                    store,
                    bucket,
                    key,
                    expires,
                    via="command",
                    dataset_id=row.pk if row is not None else None,
                    record=dual_storage.config.link_audit,
                )
        self.emit(
            {
                "id": row.pk if row is not None else None,
                "store": store.name,
                "bucket": bucket,
                "key": key,
                "url": url,
                "expires_in": expires,
                "expires_at": expires_at.isoformat(),
            },
            [
                self.style.SUCCESS(
                    f"Presigned URL for {key} (expires {expires_at:%Y-%m-%d %H:%M:%S %Z}):"
                ),
                url,
            ],
        )
