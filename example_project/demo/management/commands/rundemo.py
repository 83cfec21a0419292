"""The README's run command: embedded S3 server, migrations, buckets, demo artifacts, admin.

Starts SeaweedFS on the configured loopback endpoint (unless something already serves
it), migrates, creates the buckets, creates an ``admin`` user, saves one demo row of each
artifact kind (weight, checkpoint, schema, dataset; uploaded through the models, skipped
when already stored with the same SHA-256), prints all of it, then runs the development
server. Stops the S3 server it started on exit.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dual_storage_app.client import dual_storage
from dual_storage_app.exceptions import DualStorageError
from dual_storage_app.management.commands.dualstorage_localserver import embedded_server
from dual_storage_app.models import (
    Artifact,
    ConfigSchema,
    Dataset,
    ModelWeight,
    TrainingCheckpoint,
)
from dual_storage_app.testing.server import is_listening

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
    members = {
        "images/0001.jpg": demo_bytes("image-1", 4096),
        "labels/0001.txt": b"0 0.5 0.5 0.2 0.3\n",
        "data.yaml": b"names: [person]\nnc: 1\n",
    }
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            # A fixed timestamp keeps the archive's bytes (and SHA-256) the same each run.
            archive.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0)), data)
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
            admin = self._ensure_admin()
            try:
                for bucket, created in dual_storage.create_buckets().items():
                    self.stdout.write(f"bucket {bucket}: {'created' if created else 'exists'}")
                self._seed(admin)
            except DualStorageError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"Admin: http://{addrport}/admin/  user {ADMIN_USERNAME!r} "
                    f"password {ADMIN_PASSWORD!r}"
                )
            )
            if not no_serve:
                call_command("runserver", addrport, use_reloader=False)

    def _ensure_s3_server(self, stack: ExitStack) -> None:
        config = dual_storage.config.internal
        port = urlsplit(config.endpoint_url).port
        if port is not None and is_listening(port):
            self.stdout.write(f"S3 server already listening on {config.endpoint_url}; using it.")
            return
        try:
            server = embedded_server()
            self.stdout.write(
                f"Starting the embedded S3 server (SeaweedFS) on {config.endpoint_url} ..."
            )
            server.start()
        except (ValueError, RuntimeError, TimeoutError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        stack.callback(server.stop)
        self.stdout.write(self.style.SUCCESS(f"S3 server ready, data in {server.data_dir}"))

    def _seed(self, admin: AbstractBaseUser) -> None:
        """One row of each artifact kind, uploaded through the models (idempotent)."""
        demo: list[tuple[type[Artifact], dict[str, Any], str, bytes]] = [
            (
                ModelWeight,
                {"name": "resnet50-demo", "framework": "torchvision"},
                "resnet50-demo.pth",
                demo_bytes("weight", 3 * 1024 * 1024),
            ),
            (
                TrainingCheckpoint,
                {"name": "job 1 epoch 1", "job_id": "1", "epoch": 1, "metrics": {"mAP50": 0.42}},
                "checkpoint_epoch_1.pth",
                demo_bytes("checkpoint", 1024 * 1024),
            ),
            (
                ConfigSchema,
                {"name": "Ultralytics YOLO", "framework": "ultralytics"},
                "ultralytics.json",
                json.dumps(DEMO_SCHEMA, indent=2).encode(),
            ),
            (
                Dataset,
                {"name": "coco8 demo", "description": "A tiny detection dataset."},
                "demo-coco8.zip",
                demo_dataset_zip(),
            ),
        ]
        dataset: Artifact | None = None
        for model, fields, filename, data in demo:
            row = model._default_manager.filter(name=fields["name"]).first()
            if row is not None and row.sha256 == hashlib.sha256(data).hexdigest():
                self._report("exists", row)
            else:
                row = row or model(**fields)
                row.uploaded_by = admin  # type: ignore[assignment]
                row.file.save(filename, ContentFile(data))
                self._report("seeded", row)
            dataset = row if model is Dataset else dataset
        schema = json.loads(dual_storage.get_schema("ultralytics"))
        self.stdout.write(f"get_schema('ultralytics') -> {schema['title']!r}")
        assert dataset is not None
        url = dual_storage.generate_dataset_presigned_url(dataset_key=dataset.key, expiration=3600)
        self.stdout.write(f"presigned dataset URL (1 h): {url}")

    def _report(self, verb: str, row: Artifact) -> None:
        self.stdout.write(
            f"{verb} {row.kind:<11} {row.store_name}:{row.bucket}/{row.key} "
            f"{row.size:,} bytes sha256={row.sha256[:12]}"
        )

    def _ensure_admin(self) -> AbstractBaseUser:
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=ADMIN_USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(ADMIN_PASSWORD)
        user.save()
        return user
