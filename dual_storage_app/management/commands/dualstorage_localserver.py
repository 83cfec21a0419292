"""Run the embedded S3 server (SeaweedFS on loopback) in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from dual_storage_app.client import dual_storage
from dual_storage_app.management._common import StorageCommand, create_buckets
from dual_storage_app.testing.server import (
    BucketIdentity,
    LocalS3Server,
    embedded_server_for,
    loopback_port,
)


def embedded_server(data_dir: Path | None = None) -> LocalS3Server:
    """The embedded server for the configured internal endpoint, keeping its data in
    ``data_dir`` (default: ``settings.DUAL_STORAGE_LOCAL_DATA_DIR`` or
    ``./var/seaweedfs``).

    The internal credentials are its admin identity. When the external store is served
    by the same server with other keys, those keys get a second identity that may only
    read, write, list and tag objects in the external store's buckets (which the server
    creates), so the credential in a presigned link opens nothing else.
    """
    config = dual_storage.config
    internal, external = config.internal, config.external
    default = getattr(settings, "DUAL_STORAGE_LOCAL_DATA_DIR", Path.cwd() / "var" / "seaweedfs")
    identities: tuple[BucketIdentity, ...] = ()
    port = loopback_port(internal.endpoint_url)
    same_server = port is not None and loopback_port(external.endpoint_url) == port
    if same_server and external.access_key != internal.access_key:
        buckets = tuple(sorted(set(external.buckets.values())))
        identities = (BucketIdentity(external.access_key, external.secret_key, buckets),)
    return embedded_server_for(
        internal.endpoint_url,
        internal.access_key,
        internal.secret_key,
        Path(data_dir or default),
        identities,
    )


class Command(StorageCommand):
    help = (
        "Run SeaweedFS on the internal store's loopback endpoint with its credentials, "
        "create the configured buckets, and serve until interrupted. With --json, one "
        "JSON line when ready (endpoint, data dir, buckets) and one when stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="Where objects are kept (default: settings.DUAL_STORAGE_LOCAL_DATA_DIR "
            "or ./var/seaweedfs).",
        )

    def handle(self, *args: Any, data_dir: Path | None, **options: Any) -> None:
        try:
            server = embedded_server(data_dir)
            server.start()
        except (ValueError, RuntimeError, TimeoutError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        where = {"endpoint": server.endpoint_url, "data_dir": str(server.data_dir)}
        try:
            buckets = create_buckets()
            self.emit(
                {"event": "ready", **where, "buckets": buckets},
                [
                    self.style.SUCCESS(
                        f"S3 server on {server.endpoint_url} (data in {server.data_dir})"
                    ),
                    *(
                        f"  bucket {b['bucket']}: {'created' if b['created'] else 'exists'}"
                        for b in buckets
                    ),
                    "Press Ctrl-C to stop.",
                ],
                event=True,
            )
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            self.emit({"event": "stopped", **where}, ["S3 server stopped."], event=True)
