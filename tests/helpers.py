"""Plain helpers shared by the test files (fixtures live in ``conftest.py``).

Grouped by what they serve: files and hashes, management commands, secrets, artifacts
and the admin, hostile and odd keys, moto, and the schema cache's instruments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import traceback
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSRequest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import models
from django.urls import reverse

from dual_storage_app.client import DualStorageClient, schema_problem
from dual_storage_app.keys import MAX_SEGMENT_BYTES, validate_key
from dual_storage_app.models import Artifact, ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.pair import (
    EXTERNAL_SECRET,
    INTERNAL_SECRET,
    S3Servers,
    store_settings,
)
from dual_storage_app.testing.server import LocalS3Server

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout: manage.py, bench/, ...
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, driven by Playwright (the `browser` fixture)
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "browser"


def real_settings(servers: dict[str, LocalS3Server], **extra: str) -> dict[str, str]:
    """Settings for both real servers. The client's transfer and link tests leave the
    catalog and the link audit off (``RECORD_CATALOG``, ``LINK_AUDIT``), so they need no
    database; their own tests (``tests/real/test_catalog.py``, ``test_link_audit.py``)
    use the defaults, on."""
    off = {"RECORD_CATALOG": "false", "LINK_AUDIT": "false"}
    return store_settings(S3Servers(**servers), **{**off, **extra})


MakeFile = Callable[..., Path]


# -- files and hashes --------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> Path:
    """``size`` random bytes: parts in the wrong order or place change the hash."""
    with path.open("wb") as handle:
        for offset in range(0, size, 4 * MiB):
            handle.write(os.urandom(min(4 * MiB, size - offset)))
    return path


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def close_clients(*clients: DualStorageClient) -> None:
    for client in clients:
        client.internal.client.close()
        client.external.client.close()


# -- management commands -----------------------------------------------------------------


def run(*args: str, stdout: StringIO | None = None) -> str:
    out = stdout if stdout is not None else StringIO()
    call_command(*args, stdout=out, no_color=True)
    return out.getvalue()


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def run_with_stderr(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, no_color=True)
    return out.getvalue() + err.getvalue()


def run_command(*args: str) -> str:
    """stdout and stderr of a command, and the message of a CommandError it raises."""
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err, no_color=True)
    except CommandError as exc:
        return out.getvalue() + err.getvalue() + exception_text(exc)
    return out.getvalue() + err.getvalue()


# -- secrets -----------------------------------------------------------------------------


WRONG_SECRET = "wrong-secret-Jf62rTnB"
SECRETS = (INTERNAL_SECRET, EXTERNAL_SECRET, WRONG_SECRET)


def assert_no_secret(text: str, what: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} contains the secret key {secret!r}"


def exception_text(exc: BaseException) -> str:
    """Everything a log or a traceback would print of ``exc`` and its causes."""
    return "\n".join(
        [str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)]
        + [f"{name}={value!r}" for name, value in vars(exc).items()]
    )


# -- artifacts, the admin and the views --------------------------------------------------


INTERNAL_MODELS: tuple[type[Artifact], ...] = (ModelWeight, TrainingCheckpoint, ConfigSchema)


ALL_MODELS: tuple[type[Artifact], ...] = (*INTERNAL_MODELS, Dataset)


def make(model: type[Artifact], data: bytes, filename: str | None = None, **fields: Any) -> Any:
    """Save an artifact of ``model`` holding ``data`` (uploaded by the model's save) as
    ``filename``; the model's required fields get defaults unless ``fields`` gives them.
    A schema's ``data`` that is not JSON is stored as a JSON string holding it."""
    tag = uuid.uuid4().hex[:8]
    defaults: dict[type[Artifact], dict[str, Any]] = {
        ModelWeight: {"framework": "torch"},
        TrainingCheckpoint: {"job_id": f"job-{tag}", "epoch": 3},
        ConfigSchema: {"framework": f"fw-{tag}"},
        Dataset: {},
    }
    artifact = model(name=f"{model.kind}-{tag}", **{**defaults[model], **fields})
    if model is ConfigSchema and schema_problem(data) is not None:
        data = json.dumps(data.decode("latin-1")).encode()  # schemas must be JSON
    artifact.file.save(filename or f"{tag}.bin", ContentFile(data))
    return artifact


def changelist(model: type[models.Model]) -> str:
    return reverse(f"admin:dual_storage_app_{model._meta.model_name}_changelist")


def admin_url(model: type[Artifact], view: str, *args: object) -> str:
    return reverse(f"admin:dual_storage_app_{model._meta.model_name}_{view}", args=args)


def log_in_to_admin(page: Any, live_server_url: str) -> None:
    """Log a Playwright ``page`` in to the admin as the ``admin_user`` fixture's user."""
    page.goto(f"{live_server_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server_url}/admin/")


def levels(response: Any) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in response.context["messages"]]


def download_url(kind: str, pk: int) -> str:
    return reverse("dual_storage_app:artifact-download", kwargs={"kind": kind, "pk": pk})


def assert_nothing_private(content: bytes, servers: dict[str, LocalS3Server]) -> None:
    text = content.decode()
    assert servers["internal"].endpoint_url not in text
    assert INTERNAL_SECRET not in text and EXTERNAL_SECRET not in text


def private_endpoints(servers: dict[str, LocalS3Server]) -> list[str]:
    """How the two stores' real endpoints could appear in a page."""
    return [
        text
        for server in servers.values()
        for text in (server.endpoint_url, f"127.0.0.1:{server.s3_port}")
    ]


def assert_page_is_clean(
    content: bytes, servers: dict[str, LocalS3Server], what: str, *, internal: bool
) -> None:
    text = content.decode()
    assert_no_secret(text, what)
    for endpoint in private_endpoints(servers):
        assert endpoint not in text, f"{what} shows the endpoint {endpoint}"
    if internal:
        assert "X-Amz-Signature" not in text, f"{what} holds a presigned URL"
        assert "X-Amz-Credential" not in text, what


# -- hostile and odd keys ----------------------------------------------------------------


LONG_KEY = "k/" * 511 + "abc"  # 1,025 bytes, every segment short
LONG_SEGMENT = "s" * 256  # one 256-byte segment
NFC_NAME = "caf\u00e9"  # "café", composed
NFD_NAME = unicodedata.normalize("NFD", NFC_NAME)  # "cafe" + U+0301 COMBINING ACUTE


HOSTILE_KEYS = [
    pytest.param("../x", id="parent-dir"),
    pytest.param("a/../b", id="inner-parent-dir"),
    pytest.param("/lead", id="leading-slash"),
    pytest.param("//", id="double-slash"),
    pytest.param("a//b", id="empty-segment"),
    pytest.param(".", id="dot"),
    pytest.param("./a", id="dot-segment"),
    pytest.param("", id="empty"),
    pytest.param("a/", id="trailing-slash"),
    pytest.param("nul\x00.bin", id="NUL"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("new\nline", id="LF"),
    pytest.param("car\rriage", id="CR"),
    pytest.param("t\tab", id="TAB"),
    pytest.param("del\x7f", id="DEL"),
    pytest.param("esc\x1b[31m", id="ESC"),
    pytest.param("zero\u200bwidth", id="ZWSP"),
    pytest.param("\ufeffbom", id="BOM"),
    pytest.param("zw\u200djoiner", id="ZWJ"),
    pytest.param("evil\u202egnp.exe", id="bidi-RLO"),
    pytest.param(NFD_NAME, id="NFD"),
    pytest.param(LONG_KEY, id="1025-bytes"),
    pytest.param(f"ok/{LONG_SEGMENT}", id="256-byte-segment"),
]


# Keys that are unusual but valid: they must round-trip exactly and presign correctly.
ODD_VALID_NAMES = [
    "with space.bin",
    "plus+sign.bin",
    "100%.bin",
    "%20literal%2F.bin",
    "issue#42.bin",
    "what?.bin",
    "a&b=c.bin",
    "données/é.zip",
    "日本語/データ.csv",
    "naïve café/ünïcödé ß.txt",
    "all of them + % # ? & = é.bin",
    "C:drive-like.bin",  # a Windows drive to pathlib, a plain name to S3
    "con.txt",
    "trailing dot.",
    " leading space.bin",
    "dir/ /blank segment.bin",
    "...",
    "~tilde/$dollar/'quote\"/<angle>.bin",
]


GENERATED_KEY = re.compile(
    r"^(?P<prefix>[^/]+(?:/[^/]+)?)/(?P<unique>[0-9a-f]{12})/(?P<base>[^/]+)$"
)


def assert_generated_key(key: str, prefix: str) -> str:
    """``key`` is ``<prefix>/<12 hex>/<sanitised base name>`` and a valid key; returns
    the base name."""
    assert validate_key(key) == key
    match = GENERATED_KEY.match(key)
    assert match is not None, key
    assert match["prefix"] == prefix, key
    base = match["base"]
    assert re.fullmatch(r"[-\w.]+", base) and base not in {".", ".."}, key
    assert unicodedata.normalize("NFC", base) == base
    assert len(base.encode()) <= MAX_SEGMENT_BYTES
    return base


class StartedRequests:
    """S3 operations on either store: ``started`` (parameters built: API calls and
    presigning alike) and ``sent`` (``before-call``: about to go on the wire)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.sent: list[tuple[str, str]] = []

    def watch(self, client: DualStorageClient) -> StartedRequests:
        for store in (client.internal, client.external):
            boto_clients = {id(c): c for c in (store.client, store._presigner())}
            for boto in boto_clients.values():
                events = boto.meta.events
                events.register("before-parameter-build.s3", partial(self._log, self.started))
                events.register("before-call.s3", partial(self._log, self.sent))
        return self

    @staticmethod
    def _log(log: list[tuple[str, str]], model: Any, **kwargs: Any) -> None:
        log.append((kwargs.get("event_name", ""), model.name))

    def assert_nothing(self) -> None:
        assert self.started == [] and self.sent == []


# -- moto --------------------------------------------------------------------------------


MOTO_ACCESS_KEY = "moto-access-AKID77"
MOTO_SECRET_KEY = "moto-secret-123"
MOTO_ENDPOINT = "https://s3.us-east-1.amazonaws.com"


MOTO_SETTINGS: dict[str, str | None] = {
    "INTERNAL_STORAGE_ENDPOINT": MOTO_ENDPOINT,
    "INTERNAL_STORAGE_ACCESS_KEY": MOTO_ACCESS_KEY,
    "INTERNAL_STORAGE_SECRET_KEY": MOTO_SECRET_KEY,
    "INTERNAL_STORAGE_REGION": "us-east-1",
    "EXTERNAL_STORAGE_ENDPOINT": MOTO_ENDPOINT,
    "EXTERNAL_STORAGE_ACCESS_KEY": MOTO_ACCESS_KEY,
    "EXTERNAL_STORAGE_SECRET_KEY": MOTO_SECRET_KEY,
    "EXTERNAL_STORAGE_REGION": "us-east-1",
    "RECORD_CATALOG": "false",  # the catalog and the link audit are proven on the real servers
    "LINK_AUDIT": "false",
}


BAD_KEY = "../x"


def record_api_calls(storage_client: DualStorageClient) -> list[str]:
    """Every S3 API call either store's boto3 moto_storage makes from now on."""
    calls: list[str] = []

    def record(model: Any, **kwargs: Any) -> None:
        calls.append(model.name)

    for store in (storage_client.internal, storage_client.external):
        store.client.meta.events.register("before-call.s3", record)
    return calls


# -- the schema cache --------------------------------------------------------------------


SCHEMA_BUCKET = "config-schemas"
SCHEMA_WINDOW = 5.0  # the default SCHEMA_CACHE_SECONDS


def schema_body(version: int, size: int = 10_000) -> bytes:
    """A ~10 KB JSON schema whose every byte depends on ``version`` (a mix would show)."""
    head = json.dumps({"version": version, "pad": ""}).encode()
    return head[:-2] + (chr(ord("a") + version % 26) * (size - len(head))).encode() + b'"}'


class FakeClock:
    """The cache's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SchemaRequestLog:
    """Every request a boto3 client sends (with its If-None-Match) and every answer."""

    sent: list[tuple[str, str | None]] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)

    def attach(self, client: S3Client) -> SchemaRequestLog:
        client.meta.events.register("request-created.s3", self._created)
        client.meta.events.register("after-call.s3", self._answered)
        return self

    def _created(self, request: AWSRequest, operation_name: str, **kwargs: Any) -> None:
        self.sent.append((operation_name, request.headers.get("If-None-Match")))

    def _answered(self, http_response: Any, model: Any, **kwargs: Any) -> None:
        self.answers.append((model.name, http_response.status_code))

    def clear(self) -> None:
        self.sent.clear()
        self.answers.clear()


def other_client(client: DualStorageClient) -> S3Client:
    """A plain boto3 client, standing for another process writing to the same store."""
    config = client.config.internal
    raw: S3Client = boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint_url,
        aws_access_key_id=config.access_key,
        aws_secret_access_key=config.secret_key,
        region_name=config.region,
    )
    return raw


def log_for(client: DualStorageClient) -> SchemaRequestLog:
    return SchemaRequestLog().attach(client.internal.client)
