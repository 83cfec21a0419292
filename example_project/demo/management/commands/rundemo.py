"""The README's run command: embedded S3 server, migrations, buckets, demo artifacts, admin.

Starts SeaweedFS on the configured loopback endpoint (unless something already serves
it), migrates, creates the buckets, uploads a demo weight, checkpoint, schema and dataset
through the client, creates an ``admin`` user, prints all of it, then runs the
development server. Stops the S3 server it started on exit.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dual_storage_app.client import dual_storage
from dual_storage_app.exceptions import DualStorageError
from dual_storage_app.localserver import embedded_server_for, is_listening
from dual_storage_app.objects import TransferResult

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"  # noqa: S105 - local demo login, printed for the newcomer
DEMO_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ultralytics training config",
    "type": "object",
    "properties": {"epochs": {"type": "integer", "minimum": 1}, "imgsz": {"type": "integer"}},
}


def demo_bytes(label: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes, so re-seeding uploads identical content."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def demo_dataset_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images/0001.jpg", demo_bytes("image-1", 4096))
        archive.writestr("labels/0001.txt", "0 0.5 0.5 0.2 0.3\n")
        archive.writestr("data.yaml", "names: [person]\nnc: 1\n")
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Run the example project against the embedded S3 server, with demo data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-serve", action="store_true", help="Seed and print, then exit (no runserver)."
        )

    def handle(self, *args: Any, addrport: str, no_serve: bool, **options: Any) -> None:
        with ExitStack() as stack:
            self._ensure_s3_server(stack)
            call_command("migrate", interactive=False, verbosity=0)
            try:
                for bucket, created in dual_storage.create_buckets().items():
                    self.stdout.write(f"bucket {bucket}: {'created' if created else 'exists'}")
                self._seed()
            except DualStorageError as exc:
                raise CommandError(str(exc)) from exc
            self._ensure_admin(addrport)
            if not no_serve:
                call_command("runserver", addrport, use_reloader=False)

    def _ensure_s3_server(self, stack: ExitStack) -> None:
        config = dual_storage.config.internal
        port = urlsplit(config.endpoint_url).port
        if port is not None and is_listening(port):
            self.stdout.write(f"S3 server already listening on {config.endpoint_url}; using it.")
            return
        try:
            server = embedded_server_for(
                config.endpoint_url,
                config.access_key,
                config.secret_key,
                Path(getattr(settings, "DUAL_STORAGE_LOCAL_DATA_DIR", "var/seaweedfs")),
            )
            self.stdout.write(
                f"Starting the embedded S3 server (SeaweedFS) on {config.endpoint_url} ..."
            )
            server.start()
        except (ValueError, RuntimeError, TimeoutError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        stack.callback(server.stop)
        self.stdout.write(self.style.SUCCESS(f"S3 server ready, data in {server.data_dir}"))

    def _seed(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            weight = Path(tmp) / "resnet50-demo.pth"
            weight.write_bytes(demo_bytes("weight", 3 * 1024 * 1024))
            checkpoint = Path(tmp) / "checkpoint_epoch_1.pth"
            checkpoint.write_bytes(demo_bytes("checkpoint", 1024 * 1024))
            self._report(
                "weight",
                dual_storage.upload_weight(file_path=weight, weight_key="demo/resnet50-demo.pth"),
            )
            self._report(
                "checkpoint",
                dual_storage.upload_checkpoint(
                    file_path=checkpoint, checkpoint_key="jobs/1/checkpoint_epoch_1.pth"
                ),
            )
        self._report(
            "schema", dual_storage.upload_schema("ultralytics", json.dumps(DEMO_SCHEMA, indent=2))
        )
        self._report(
            "dataset",
            dual_storage.upload_dataset(
                file_obj=io.BytesIO(demo_dataset_zip()), dataset_key="datasets/demo-coco8.zip"
            ),
        )
        schema = json.loads(dual_storage.get_schema("ultralytics"))
        self.stdout.write(f"get_schema('ultralytics') -> {schema['title']!r}")
        url = dual_storage.generate_dataset_presigned_url(
            dataset_key="datasets/demo-coco8.zip", expiration=3600
        )
        self.stdout.write(f"presigned dataset URL (1 h): {url}")

    def _report(self, label: str, result: TransferResult) -> None:
        self.stdout.write(
            f"seeded {label:<10} {result.store}:{result.bucket}/{result.key} "
            f"{result.size:,} bytes sha256={result.sha256[:12]}"
        )

    def _ensure_admin(self, addrport: str) -> None:
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=ADMIN_USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(ADMIN_PASSWORD)
        user.save()
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: http://{addrport}/admin/  user {ADMIN_USERNAME!r} "
                f"password {ADMIN_PASSWORD!r}"
            )
        )
