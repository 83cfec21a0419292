"""The README's run command: embedded S3 server, migrations, buckets, demo artifacts, admin.

Starts SeaweedFS on the configured loopback endpoint (unless something already serves
it), migrates, creates the buckets, prints all of it, then runs the development server.
Stops the S3 server it started on exit.

It only ever adds what is absent and never changes what exists:

- the ``admin`` user is created (and its login printed) only if no user of that name
  exists; an existing one, and its password, are kept;
- each artifact kind (weight, checkpoint, schema, dataset) gets its demo row, uploaded
  through the models, on the first run only, and only if it holds no rows yet. Either
  way this is recorded (:class:`~example_project.demo.models.DemoSeed`), so a demo row
  the user later renames, replaces or deletes is never seeded again.
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

from dual_storage_app import cors
from dual_storage_app.client import dual_storage
from dual_storage_app.exceptions import DualStorageError, ObjectNotFound
from dual_storage_app.management.commands.dualstorage_localserver import embedded_server
from dual_storage_app.models import (
    Artifact,
    ConfigSchema,
    Dataset,
    ModelWeight,
    TrainingCheckpoint,
)
from dual_storage_app.testing.server import is_listening
from example_project.demo.models import DemoSeed

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
            admin, created = self._ensure_admin()
            try:
                for bucket, was_created in dual_storage.create_buckets().items():
                    self.stdout.write(f"bucket {bucket}: {'created' if was_created else 'exists'}")
                self._allow_browser_uploads(addrport)
                self._seed(admin)
            except DualStorageError as exc:
                raise CommandError(str(exc)) from exc
            if created:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Admin: http://{addrport}/admin/  user {ADMIN_USERNAME!r} "
                        f"password {ADMIN_PASSWORD!r}"
                    )
                )
            else:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Admin: http://{addrport}/admin/  existing user {ADMIN_USERNAME!r} "
                        "kept (password unchanged)"
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

    def _allow_browser_uploads(self, addrport: str) -> None:
        """The CORS rule on the external datasets bucket for the demo site's origins, so
        pages served by runserver may upload and read datasets with presigned URLs."""
        origins = demo_origins(addrport)
        store, bucket = dual_storage.locate("datasets")
        change = cors.set_rule(store, bucket, origins)
        self.stdout.write(f"CORS {bucket}: {change.action} for {', '.join(origins)}")

    def _seed(self, admin: AbstractBaseUser) -> None:
        """One row of each artifact kind, uploaded through the models, for each kind
        never dealt with before and holding no rows; then what the demo shows."""
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
        for model, fields, filename, data in demo:
            kind = model.kind
            manager = model._default_manager
            if DemoSeed._default_manager.filter(kind=kind).exists():
                self.stdout.write(f"kept {kind:<11} {manager.count()} row(s); seeded before")
                continue
            if manager.exists():
                DemoSeed._default_manager.create(kind=kind, seeded=False)
                self.stdout.write(f"kept {kind:<11} {manager.count()} row(s); demo not seeded")
                continue
            row = model(**fields)
            row.uploaded_by = admin  # type: ignore[assignment]
            row.file.save(filename, ContentFile(data))
            DemoSeed._default_manager.create(kind=kind, seeded=True)
            self._report("seeded", row)
        self._show_demo()

    def _show_demo(self) -> None:
        """The demo schema through ``get_schema`` and a presigned link to a dataset, when
        they (still) exist."""
        try:
            schema = dual_storage.get_schema("ultralytics")
        except ObjectNotFound:
            self.stdout.write("get_schema('ultralytics') -> no such schema")
        else:
            title = _title(schema)
            shown = repr(title) if title is not None else f"{len(schema):,} bytes"
            self.stdout.write(f"get_schema('ultralytics') -> {shown}")
        dataset = Dataset.objects.order_by("pk").first()
        if dataset is not None:
            url = dual_storage.generate_dataset_presigned_url(
                dataset_key=dataset.key, expiration=3600
            )
            self.stdout.write(f"presigned dataset URL (1 h): {url}")

    def _report(self, verb: str, row: Artifact) -> None:
        self.stdout.write(
            f"{verb} {row.kind:<11} {row.store_name}:{row.bucket}/{row.key} "
            f"{row.size:,} bytes sha256={row.sha256[:12]}"
        )

    def _ensure_admin(self) -> tuple[AbstractBaseUser, bool]:
        """The ``admin`` user, created as a superuser with the demo password only if
        absent (True); an existing one is returned unchanged (False)."""
        user_model = get_user_model()
        existing = user_model._default_manager.filter(username=ADMIN_USERNAME).first()
        if existing is not None:
            return existing, False
        user = user_model._default_manager.create_superuser(
            username=ADMIN_USERNAME, email="", password=ADMIN_PASSWORD
        )
        return user, True


def demo_origins(addrport: str) -> list[str]:
    """The origins a browser has on runserver's ``addrport`` (``8000``,
    ``127.0.0.1:8000``, ``0.0.0.0:8000``, ``[::1]:8000``, ``host:8000``): localhost and
    127.0.0.1 on its port, and the named host when it is another one."""
    host, _, port = addrport.rpartition(":")
    host = host.strip("[]")
    names = ["localhost", "127.0.0.1"]
    if host and host not in (*names, "0.0.0.0", "::"):  # noqa: S104 - not a bind
        names.append(f"[{host}]" if ":" in host else host)
    return cors.validate_origins((f"http://{name}:{port}" for name in names), source="addrport")


def _title(schema: bytes) -> str | None:
    """The ``title`` of a JSON schema object, if it has one."""
    try:
        document = json.loads(schema)
    except ValueError:
        return None
    title = document.get("title") if isinstance(document, dict) else None
    return title if isinstance(title, str) else None
