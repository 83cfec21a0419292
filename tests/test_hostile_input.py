"""Hostile input on the real servers: every entry point refuses a bad key the same way,
before any request; generated keys are always safe and never alias another key; odd but
valid keys round-trip and presign; bad expiries are refused; edge sizes are stored whole.

Issue 4, item 3. The request log counts every S3 operation the app *starts* (the botocore
``before-parameter-build`` event, which presigning emits too), so "zero" means the key was
refused before anything was built, signed or sent.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import InvalidArgument, InvalidKey, NoPublicURL
from dual_storage_app.keys import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, validate_key
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.models import ConfigSchema, Dataset, ModelWeight, TrainingCheckpoint
from dual_storage_app.storages import ExternalStorage, InternalStorage
from dual_storage_app.store import Store
from dual_storage_app.store.transfer import MAX_PRESIGN_SECONDS, PART_SIZE
from tests.http import fetch
from tests.testapp.models import Upload

pytestmark = pytest.mark.real_s3

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


def test_fixtures_have_the_intended_sizes() -> None:
    assert len(LONG_KEY.encode()) == MAX_KEY_BYTES + 1
    assert max(len(s.encode()) for s in LONG_KEY.split("/")) < MAX_SEGMENT_BYTES
    assert len(LONG_SEGMENT.encode()) == MAX_SEGMENT_BYTES + 1
    assert NFD_NAME != NFC_NAME and unicodedata.normalize("NFC", NFD_NAME) == NFC_NAME
    for param in HOSTILE_KEYS:
        with pytest.raises(InvalidKey):
            validate_key(param.values[0])
    for name in ODD_VALID_NAMES:
        assert validate_key(name) == name


# -- helpers -------------------------------------------------------------------


class RequestLog:
    """S3 operations on either store: ``started`` (parameters built: API calls and
    presigning alike) and ``sent`` (``before-call``: about to go on the wire)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.sent: list[tuple[str, str]] = []

    def watch(self, client: DualStorageClient) -> RequestLog:
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


def test_the_request_log_sees_requests_and_presigning(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """The control for every "nothing was started" assertion below."""
    log = RequestLog().watch(real_storage)
    real_storage.upload_dataset(io.BytesIO(b"x"), f"{unique_key}/x")
    assert "PutObject" in [name for _, name in log.sent]
    sent = len(log.sent)
    real_storage.generate_dataset_presigned_url(f"{unique_key}/x", 60)
    assert log.started[-1][1] == "GetObject" and len(log.sent) == sent  # signed, not sent


@pytest.fixture
def requests_started(real_storage: DualStorageClient) -> RequestLog:
    return RequestLog().watch(real_storage)


def refusal(key: str, store: str, bucket: str) -> str:
    """The one message the key validator gives for ``key`` in ``store``/``bucket``."""
    with pytest.raises(InvalidKey) as caught:
        validate_key(key, store=store, bucket=bucket)
    return str(caught.value)


Call = Callable[[str], object]
INTERNAL_KINDS: tuple[ArtifactKind, ...] = ("weights", "checkpoints", "schemas")
BUCKETS: dict[ArtifactKind, tuple[str, str]] = {
    "weights": ("internal", "model-weights"),
    "checkpoints": ("internal", "training-checkpoints"),
    "schemas": ("internal", "config-schemas"),
    "datasets": ("external", "training-datasets"),
}


def _copy_from(store: Store, bucket: str, key: str) -> None:
    store.copy(bucket, key, "ok")


def _copy_to(store: Store, bucket: str, key: str) -> None:
    store.copy(bucket, "ok", key)


def _read_into(store: Store, bucket: str, key: str) -> object:
    return store.read_into(bucket, key, io.BytesIO())


def _save(storage: InternalStorage | ExternalStorage, key: str) -> str:
    return storage.save(key, ContentFile(b"x"))


def _save_named(storage: InternalStorage | ExternalStorage, key: str) -> str:
    return storage.save(None, ContentFile(b"x", name=key))


def python_entry_points(
    client: DualStorageClient, tmp_path: Path
) -> list[tuple[str, ArtifactKind, Call]]:
    """``(label, kind, call)`` for every Python entry point that takes an object key."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload")
    dest = tmp_path / "dest.bin"
    points: list[tuple[str, ArtifactKind, Call]] = [
        ("client.upload_weight", "weights", lambda k: client.upload_weight(source, k)),
        ("client.download_weight", "weights", lambda k: client.download_weight(k, dest)),
        ("client.upload_checkpoint", "checkpoints", lambda k: client.upload_checkpoint(source, k)),
        (
            "client.download_checkpoint",
            "checkpoints",
            lambda k: client.download_checkpoint(k, dest),
        ),
        (
            "client.upload_dataset",
            "datasets",
            lambda k: client.upload_dataset(io.BytesIO(b"payload"), k),
        ),
        ("client.download_dataset", "datasets", lambda k: client.download_dataset(k, dest)),
        (
            "client.generate_dataset_presigned_url",
            "datasets",
            lambda k: client.generate_dataset_presigned_url(k, 60),
        ),
    ]
    for kind in BUCKETS:
        points += [
            (f"client.exists({kind})", kind, partial(client.exists, kind)),
            (f"client.head({kind})", kind, partial(client.head, kind)),
            (f"client.delete({kind})", kind, partial(client.delete, kind)),
        ]
        store, bucket = client.locate(kind)
        points += [
            (f"store.get_bytes({kind})", kind, partial(store.get_bytes, bucket)),
            (f"store.copy(source, {kind})", kind, partial(_copy_from, store, bucket)),
            (f"store.copy(dest, {kind})", kind, partial(_copy_to, store, bucket)),
            (f"store.read_into({kind})", kind, partial(_read_into, store, bucket)),
        ]
    storages: list[tuple[ArtifactKind, InternalStorage | ExternalStorage]] = [
        ("weights", InternalStorage(kind="weights")),
        ("checkpoints", InternalStorage(kind="checkpoints")),
        ("schemas", InternalStorage(kind="schemas")),
        ("datasets", ExternalStorage()),
    ]
    for kind, storage in storages:
        name = type(storage).__name__
        points += [
            (f"{name}({kind}).save", kind, partial(_save, storage)),
            (f"{name}({kind}).save(None, named file)", kind, partial(_save_named, storage)),
            (f"{name}({kind}).open", kind, storage.open),
            (f"{name}({kind}).exists", kind, storage.exists),
            (f"{name}({kind}).delete", kind, storage.delete),
            (f"{name}({kind}).size", kind, storage.size),
            (f"{name}({kind}).get_modified_time", kind, storage.get_modified_time),
            (f"{name}({kind}).get_available_name", kind, storage.get_available_name),
        ]
    external = ExternalStorage()
    points += [
        ("ExternalStorage.url", "datasets", external.url),
        ("ExternalStorage.url(expire=60)", "datasets", lambda k: external.url(k, expire=60)),
    ]
    return points


# -- the Python API --------------------------------------------------------------


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_every_python_entry_point_refuses_the_key_identically(
    key: str,
    real_storage: DualStorageClient,
    requests_started: RequestLog,
    tmp_path: Path,
) -> None:
    outcomes: dict[str, str] = {}
    for label, kind, call in python_entry_points(real_storage, tmp_path):
        store, bucket = BUCKETS[kind]
        with pytest.raises(InvalidKey) as caught:
            call(key)
        error = caught.value
        assert isinstance(error, ValueError), label
        assert (error.store, error.bucket, error.key) == (store, bucket, key), label
        # One message, the validator's, whichever door the key came through.
        assert str(error) == refusal(key, store, bucket), label
        outcomes[label] = type(error).__name__
    assert set(outcomes.values()) == {"InvalidKey"}
    requests_started.assert_nothing()  # refused before any request was even built
    assert list(tmp_path.iterdir()) == [tmp_path / "source.bin"]  # no download leftovers


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_internal_storage_never_gives_a_url_whatever_the_key(
    key: str, real_storage: DualStorageClient, requests_started: RequestLog
) -> None:
    for kind in INTERNAL_KINDS:
        with pytest.raises(NoPublicURL):
            InternalStorage(kind=kind).url(key)
    requests_started.assert_nothing()


@pytest.mark.parametrize("path", HOSTILE_KEYS)
def test_listdir_refuses_hostile_directory_paths(
    path: str, real_storage: DualStorageClient, requests_started: RequestLog
) -> None:
    storages = [InternalStorage(kind="weights"), ExternalStorage()]
    if path in {"", "a/"}:  # the bucket's root, and a directory given with its slash
        for storage in storages:
            storage.listdir(path)
        return
    for storage in storages:
        with pytest.raises(InvalidKey):
            storage.listdir(path)
    requests_started.assert_nothing()


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_list_prefix_is_refused_unless_it_is_a_plain_prefix(
    key: str, real_storage: DualStorageClient, requests_started: RequestLog
) -> None:
    """A listing prefix is not a key: ``"a/"`` and ``"."`` are fine prefixes (they only
    narrow a listing). Everything else in the table is refused before any request."""
    plain_prefix = key in {"a/", ".", ""}
    for kind in BUCKETS:
        store, bucket = BUCKETS[kind]
        if plain_prefix:
            listed = list(real_storage.list_objects(kind, prefix=key))
            assert all(info.key.startswith(key) for info in listed)
            continue
        with pytest.raises(InvalidKey) as caught:
            list(real_storage.list_objects(kind, prefix=key))
        assert caught.value.store == store and caught.value.bucket == bucket
        with pytest.raises(CommandError, match=re.escape(str(caught.value).split(": ")[-1])):
            run("dualstorage_list", kind, "--store", "--prefix", key)
    if not plain_prefix:
        requests_started.assert_nothing()


@pytest.mark.parametrize("prefix", ["../x", "a//b", NFD_NAME])
def test_list_prefix_refusal_names_the_prefix_that_was_given(
    prefix: str, real_storage: DualStorageClient
) -> None:
    """The refusal must name what the caller passed, not an internal variant of it."""
    with pytest.raises(InvalidKey) as caught:
        list(real_storage.list_objects("datasets", prefix=prefix))
    assert caught.value.key == prefix
    assert f"{prefix!r}:" in str(caught.value) or f"{prefix!r} " in str(caught.value)


@pytest.mark.parametrize("name", [p for p in HOSTILE_KEYS if p.values[0] not in {".", "a/"}])
def test_schema_names_are_refused_as_keys(
    name: str, real_storage: DualStorageClient, requests_started: RequestLog
) -> None:
    """``upload_schema``/``get_schema`` map a name to ``<name>.json``; a hostile name is
    refused like a hostile key (InvalidKey, so Django answers 400 if one escapes a view)."""
    with pytest.raises(InvalidKey):
        real_storage.upload_schema(name, b"{}")
    with pytest.raises(InvalidKey):
        real_storage.get_schema(name)
    requests_started.assert_nothing()


# -- management commands ----------------------------------------------------------


def run(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, no_color=True)
    return out.getvalue() + err.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_commands_refuse_the_key_with_the_validators_message(
    key: str, real_storage: DualStorageClient, requests_started: RequestLog, tmp_path: Path
) -> None:
    dest = tmp_path / "dest.bin"
    commands: list[tuple[tuple[str, ...], ArtifactKind]] = [
        (("dualstorage_download", "weights", "--key", key, str(dest)), "weights"),
        (("dualstorage_download", "checkpoints", "--key", key, str(dest)), "checkpoints"),
        (("dualstorage_download", "schemas", "--key", key, str(dest)), "schemas"),
        (("dualstorage_download", "datasets", "--key", key, str(dest)), "datasets"),
        (("dualstorage_presign", "--key", key), "datasets"),
        (("dualstorage_presign", "--key", key, "--json"), "datasets"),
    ]
    for argv, kind in commands:
        store, bucket = BUCKETS[kind]
        with pytest.raises(CommandError) as caught:
            run(*argv)
        assert str(caught.value) == refusal(key, store, bucket), argv
    requests_started.assert_nothing()
    assert list(tmp_path.iterdir()) == []


# Local files may hold any byte but NUL and "/", and at most 255 bytes of name.
COMMAND_FILE_NAMES = [
    pytest.param("new\nline.pth", id="LF"),
    pytest.param("car\rriage.pth", id="CR"),
    pytest.param("t\tab.pth", id="TAB"),
    pytest.param("del\x7f.pth", id="DEL"),
    pytest.param("esc\x1b[31m.pth", id="ESC"),
    pytest.param("zero\u200bwidth.pth", id="ZWSP"),
    pytest.param("\ufeffbom.pth", id="BOM"),
    pytest.param("zw\u200djoiner.pth", id="ZWJ"),
    pytest.param("evil\u202egnp.exe", id="bidi-RLO"),
    pytest.param(NFD_NAME + ".pth", id="NFD"),
    pytest.param(NFC_NAME + ".pth", id="NFC"),
    pytest.param("..\\..\\windows.pth", id="backslashes"),
    pytest.param("...", id="three-dots"),
    pytest.param(" lead and trail .pth ", id="spaces"),
    pytest.param("s" * 251 + ".pth", id="255-byte-name"),
    pytest.param("日本語" * 28 + ".pt", id="255-byte-multibyte-name"),
    pytest.param("\U0001f642", id="emoji-only"),
    pytest.param("()", id="punctuation-only"),
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


@pytest.mark.django_db
@pytest.mark.parametrize("filename", COMMAND_FILE_NAMES)
def test_upload_command_stores_a_hostile_file_name_under_a_safe_generated_key(
    filename: str, real_storage: DualStorageClient, tmp_path: Path
) -> None:
    import json

    keys: list[str] = []
    payloads = [b"first " + filename.encode(), b"second " + filename.encode()]
    for index, payload in enumerate(payloads):
        folder = tmp_path / str(index)
        folder.mkdir()
        path = folder / filename
        path.write_bytes(payload)
        data = json.loads(run("dualstorage_upload", "weights", str(path), "--json"))
        assert_generated_key(data["key"], "weights")
        assert data["sha256"] == hashlib.sha256(payload).hexdigest()
        keys.append(data["key"])
    assert keys[0] != keys[1]  # the same name twice: two objects, never one overwritten
    for key, payload in zip(keys, payloads, strict=True):
        assert real_storage.internal.get_bytes("model-weights", key) == payload
    assert ModelWeight.objects.filter(file__in=keys).count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "framework", ["../x", "a/b", "nul\x00", NFD_NAME, "\u202eevil", "日本語" * 33]
)
def test_upload_command_refuses_a_hostile_schema_framework(
    framework: str, real_storage: DualStorageClient, tmp_path: Path
) -> None:
    """The framework names the published ``<framework>.json``: a name that cannot be a
    schema key is refused before anything is stored, not stored and then never published."""
    path = tmp_path / "schema.json"
    path.write_bytes(b'{"type": "object"}')
    with pytest.raises(CommandError):
        run("dualstorage_upload", "schemas", str(path), "--framework", framework)
    assert not ConfigSchema.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("job_id", ["../x", "a/b", "nul\x00", NFD_NAME, "()", "\U0001f642"])
def test_upload_command_files_a_hostile_job_id_under_a_safe_key_or_refuses_it(
    job_id: str, real_storage: DualStorageClient, tmp_path: Path
) -> None:
    """The job id becomes a key segment (``jobs/<job>/...``): the checkpoint is stored
    under a safe key, or the command refuses with a CommandError, never a traceback."""
    import json

    path = tmp_path / "epoch1.pth"
    path.write_bytes(b"checkpoint")
    try:
        output = run("dualstorage_upload", "checkpoints", str(path), "--job-id", job_id, "--json")
    except CommandError:
        assert not TrainingCheckpoint.objects.exists()
        return
    key = json.loads(output)["key"]
    assert validate_key(key) == key and key.startswith("jobs/")
    assert key.count("/") == 3  # jobs/<one safe segment>/<unique>/<name>
    assert real_storage.internal.get_bytes("training-checkpoints", key) == b"checkpoint"


# -- admin -------------------------------------------------------------------------


def multipart_upload(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body whose file name arrives exactly as given (RFC 5987 ``filename*``),
    as a hostile client would send it: Django's test client would strip the path first."""
    boundary = f"hostile-{uuid.uuid4().hex}"
    body = b""
    for name, value in fields.items():
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f"filename*=UTF-8''{quote(filename, safe='')}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# (file name as sent, what the admin must do): "stored" under a safe generated key, or
# "not a file" when Django's upload parser drops a name with nothing left of it.
ADMIN_FILE_NAMES = [
    pytest.param("../../etc/passwd", "stored", id="traversal"),
    pytest.param("a/../b.pth", "stored", id="inner-parent-dir"),
    pytest.param("/abs.pth", "stored", id="leading-slash"),
    pytest.param("a//b.pth", "stored", id="empty-segment"),
    pytest.param("./a.pth", "stored", id="dot-segment"),
    pytest.param("C:\\Windows\\evil.pth", "stored", id="windows-path"),
    pytest.param("nul\x00.pth", "stored", id="NUL"),
    pytest.param("new\nline.pth", "stored", id="LF"),
    pytest.param("car\rriage.pth", "stored", id="CR"),
    pytest.param("esc\x1b[31m.pth", "stored", id="ESC"),
    pytest.param("del\x7f.pth", "stored", id="DEL"),
    pytest.param("zero\u200bwidth.pth", "stored", id="ZWSP"),
    pytest.param("\ufeffbom.pth", "stored", id="BOM"),
    pytest.param("evil\u202egnp.exe", "stored", id="bidi-RLO"),
    pytest.param(NFD_NAME + ".pth", "stored", id="NFD"),
    pytest.param(NFC_NAME + ".pth", "stored", id="NFC"),
    pytest.param("s" * 252 + ".pth", "stored", id="256-byte-name"),
    pytest.param("日本語" * 30 + ".pth", "stored", id="274-byte-multibyte-name"),
    pytest.param("\U0001f642", "stored", id="emoji-only"),
    pytest.param("()", "stored", id="punctuation-only"),
    pytest.param("//", "not a file", id="slashes-only"),
    pytest.param("..", "not a file", id="dotdot"),
    pytest.param(".", "not a file", id="dot"),
    pytest.param("\u200b", "not a file", id="ZWSP-only"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("filename", "outcome"), ADMIN_FILE_NAMES)
def test_admin_upload_of_a_hostile_file_name_gets_a_safe_key(
    filename: str, outcome: str, real_storage: DualStorageClient, admin_client: Client
) -> None:
    url = reverse("admin:dual_storage_app_dataset_add")
    changelist = reverse("admin:dual_storage_app_dataset_changelist")
    payloads = [b"one " + filename.encode(), b"two " + filename.encode()]
    for index, payload in enumerate(payloads):
        body, content_type = multipart_upload({"name": f"n{index}"}, filename, payload)
        response = admin_client.post(url, body, content_type=content_type)
        if outcome == "not a file":
            assert response.status_code == 200  # the form again, with its error
            assert response.context["adminform"].form.errors["file"]
            assert not Dataset.objects.exists()
            return
        assert response.status_code == 302, response.content[-300:]
        shown = [str(m) for m in admin_client.get(response["Location"]).context["messages"]]
        assert response["Location"] == changelist, shown  # not back to the add form
    rows = list(Dataset.objects.order_by("pk"))
    assert [row.name for row in rows] == ["n0", "n1"]
    bases = {assert_generated_key(row.key, "datasets") for row in rows}
    assert len(bases) == 1  # both uploads sanitised the name alike ...
    assert rows[0].key != rows[1].key  # ... and still got two keys
    for row, payload in zip(rows, payloads, strict=True):
        assert real_storage.external.get_bytes("training-datasets", row.key) == payload
        assert row.sha256 == hashlib.sha256(payload).hexdigest()


@pytest.mark.django_db
def test_admin_nfc_and_nfd_file_names_never_share_a_key(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    url = reverse("admin:dual_storage_app_dataset_add")
    for index, name in enumerate((NFC_NAME + ".zip", NFD_NAME + ".zip")):
        body, content_type = multipart_upload({"name": f"n{index}"}, name, name.encode())
        assert admin_client.post(url, body, content_type=content_type).status_code == 302
    nfc_row, nfd_row = Dataset.objects.order_by("pk")
    assert nfc_row.key != nfd_row.key
    assert assert_generated_key(nfc_row.key, "datasets") == NFC_NAME + ".zip"
    assert_generated_key(nfd_row.key, "datasets")
    assert (
        real_storage.external.get_bytes("training-datasets", nfc_row.key)
        == (NFC_NAME + ".zip").encode()
    )


@pytest.mark.django_db
@pytest.mark.parametrize("text", HOSTILE_KEYS)
def test_admin_search_with_hostile_text_does_not_crash(
    text: str, real_storage: DualStorageClient, admin_client: Client
) -> None:
    artifact = Dataset(name="findable")
    artifact.file.save("findable.zip", ContentFile(b"d"))
    for model in ("dataset", "modelweight", "trainingcheckpoint", "configschema"):
        response = admin_client.get(
            reverse(f"admin:dual_storage_app_{model}_changelist"), {"q": text}
        )
        assert response.status_code == 200, model


@pytest.mark.django_db
@pytest.mark.parametrize("name", HOSTILE_KEYS)
def test_plain_filefield_never_stores_under_a_cleaned_alias(
    name: str, real_storage: DualStorageClient
) -> None:
    """A user's own ``FileField(storage=datasets_storage, upload_to="datasets/")``: the
    name is refused, or stored under a valid key below ``datasets/`` that holds exactly
    these bytes (Django's generated names are suggestions, made unique)."""
    upload = Upload()
    payload = b"plain filefield " + name.encode()
    try:
        upload.dataset.save(name, ContentFile(payload), save=False)
    except SuspiciousFileOperation:  # InvalidKey is one too
        return
    key = upload.dataset.name
    assert key is not None and validate_key(key) == key and key.startswith("datasets/")
    assert real_storage.external.get_bytes("training-datasets", key) == payload


# -- views -------------------------------------------------------------------------


@pytest.mark.django_db
def test_views_answer_404_to_a_kind_with_traversal(
    real_storage: DualStorageClient, admin_client: Client
) -> None:
    weight = ModelWeight(name="w")
    weight.file.save("w.pth", ContentFile(b"weights"))
    dataset = Dataset(name="d")
    dataset.file.save("d.zip", ContentFile(b"dataset"))
    response: Any = admin_client.get(f"/storage/weights/{weight.pk}/download/")
    assert response.status_code == 200  # the control: this kind and id do download
    assert b"".join(response.streaming_content) == b"weights"
    response.close()
    hostile_kinds = [
        "..",
        ".",
        "%2e%2e",
        "weights%2F..%2Fdatasets",
        "weights/../datasets",
        "..%2Fweights",
        "weights%00",
        "weights%5C..%5Cdatasets",
        "WEIGHTS",
        "weights%E2%80%8B",  # weights + zero-width space
        "datasets",
    ]
    for kind in hostile_kinds:
        for pk in (weight.pk, dataset.pk):
            response = admin_client.get(f"/storage/{kind}/{pk}/download/")
            assert response.status_code == 404, kind
    for path in (
        f"/storage/../weights/{weight.pk}/download/",
        f"/storage/datasets/..%2F{dataset.pk}/link/",
        f"/storage/datasets/{dataset.pk}%00/link/",
    ):
        assert admin_client.get(path).status_code == 404, path


# -- keys that are odd but valid --------------------------------------------------


@pytest.mark.parametrize("name", ODD_VALID_NAMES)
def test_odd_valid_keys_round_trip_list_and_presign(
    name: str, real_storage: DualStorageClient, unique_key: str, tmp_path: Path
) -> None:
    key = f"{unique_key}/{name}"
    payload = b"bytes of " + key.encode()
    result = real_storage.upload_dataset(io.BytesIO(payload), key)
    assert result.key == key
    listed = [info.key for info in real_storage.list_objects("datasets", prefix=f"{unique_key}/")]
    assert listed == [key]  # exactly this key, not an escaped or normalised variant
    assert real_storage.head("datasets", key).size == len(payload)
    dest = tmp_path / "dest"
    real_storage.download_dataset(key, dest)
    assert dest.read_bytes() == payload
    assert fetch(real_storage.generate_dataset_presigned_url(key, 60)) == payload

    weight = real_storage.upload_weight(dest, key)
    assert [i.key for i in real_storage.list_objects("weights", prefix=f"{unique_key}/")] == [key]
    assert weight.sha256 == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("name", ODD_VALID_NAMES)
def test_odd_valid_keys_through_the_storages(
    name: str, real_storage: DualStorageClient, unique_key: str
) -> None:
    key = f"{unique_key}/{name}"
    external, internal = ExternalStorage(), InternalStorage(kind="checkpoints")
    for storage in (external, internal):
        assert storage.save(key, ContentFile(b"via storage")) == key  # never renamed
        assert storage.exists(key) and storage.size(key) == len(b"via storage")
        with storage.open(key) as handle:
            assert handle.read() == b"via storage"
    assert fetch(external.url(key)) == b"via storage"
    directory, base = key.rsplit("/", 1)
    assert external.listdir(directory)[1] == [base]
    for storage in (external, internal):
        storage.delete(key)
        assert not storage.exists(key)


def test_nfd_spelling_is_refused_and_never_aliases_the_nfc_object(
    real_storage: DualStorageClient, unique_key: str, tmp_path: Path
) -> None:
    nfc_key, nfd_key = f"{unique_key}/{NFC_NAME}.bin", f"{unique_key}/{NFD_NAME}.bin"
    real_storage.upload_dataset(io.BytesIO(b"the NFC object"), nfc_key)
    log = RequestLog().watch(real_storage)
    for call in (
        lambda: real_storage.upload_dataset(io.BytesIO(b"an NFD impostor"), nfd_key),
        lambda: real_storage.download_dataset(nfd_key, tmp_path / "d"),
        lambda: real_storage.generate_dataset_presigned_url(nfd_key, 60),
        lambda: real_storage.exists("datasets", nfd_key),
        lambda: real_storage.head("datasets", nfd_key),
        lambda: real_storage.delete("datasets", nfd_key),
        lambda: ExternalStorage().save(nfd_key, ContentFile(b"impostor")),
        lambda: ExternalStorage().url(nfd_key),
    ):
        with pytest.raises(InvalidKey, match="not NFC-normalised"):
            call()
    log.assert_nothing()
    listed = [i.key for i in real_storage.list_objects("datasets", prefix=f"{unique_key}/")]
    assert listed == [nfc_key]
    assert real_storage.external.get_bytes("training-datasets", nfc_key) == b"the NFC object"
    assert not (tmp_path / "d").exists()


# -- presign expiry ---------------------------------------------------------------

BAD_EXPIRIES: list[Any] = [0, -1, MAX_PRESIGN_SECONDS + 1, 1.5, True]


@pytest.fixture
def dataset_key(real_storage: DualStorageClient, unique_key: str) -> str:
    key = f"{unique_key}/expiry.zip"
    real_storage.upload_dataset(io.BytesIO(b"expiry"), key)
    return key


@pytest.mark.parametrize("expires", BAD_EXPIRIES, ids=repr)
def test_bad_expiry_is_refused_by_client_and_storage(
    expires: Any, real_storage: DualStorageClient, dataset_key: str
) -> None:
    log = RequestLog().watch(real_storage)
    problem = r"1 to 604800 seconds|must be an int number of seconds"
    with pytest.raises(InvalidArgument, match=problem) as caught:
        real_storage.generate_dataset_presigned_url(dataset_key, expires)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidArgument, match=problem):
        real_storage.external.presign_get("training-datasets", dataset_key, expires)
    with pytest.raises(InvalidArgument, match=problem):
        ExternalStorage().url(dataset_key, expire=expires)
    log.assert_nothing()


@pytest.mark.django_db
@pytest.mark.parametrize("expires", BAD_EXPIRIES, ids=repr)
def test_bad_expiry_is_refused_by_the_presign_command(
    expires: Any, real_storage: DualStorageClient, dataset_key: str
) -> None:
    with pytest.raises(CommandError, match=r"604800|invalid int value"):
        run("dualstorage_presign", "--key", dataset_key, f"--expires={expires}")


@pytest.mark.django_db
@pytest.mark.parametrize("expires", BAD_EXPIRIES, ids=repr)
def test_bad_expiry_is_refused_by_the_admin_form_and_the_link_view(
    expires: Any, real_storage: DualStorageClient, admin_client: Client
) -> None:
    dataset = Dataset(name="expiry")
    dataset.file.save("expiry.zip", ContentFile(b"expiry"))
    page = admin_client.post(
        reverse("admin:dual_storage_app_dataset_changelist"),
        {
            "action": "create_presigned_links",
            "_selected_action": [dataset.pk],
            "expires": str(expires),
            "apply": "1",
        },
    )
    assert page.status_code == 200
    assert "links" not in page.context and page.context["form"].errors["expires"]
    assert b"X-Amz-Signature" not in page.content
    link = reverse("dual_storage_app:dataset-link", kwargs={"pk": dataset.pk})
    assert admin_client.get(link, {"expires": str(expires)}).status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("expires", [1, MAX_PRESIGN_SECONDS])
def test_expiry_bounds_are_accepted_everywhere(
    expires: int, real_storage: DualStorageClient, dataset_key: str, admin_client: Client
) -> None:
    marker = f"X-Amz-Expires={expires}&"
    assert marker in real_storage.generate_dataset_presigned_url(dataset_key, expires) + "&"
    assert marker in ExternalStorage().url(dataset_key, expire=expires) + "&"
    assert marker in run("dualstorage_presign", "--key", dataset_key, f"--expires={expires}") + "&"


# -- sizes at the multipart threshold ------------------------------------------------


@pytest.fixture(scope="module")
def edge_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Path]]:
    folder = tmp_path_factory.mktemp("edge-sizes")
    files: dict[int, Path] = {}
    for size in (0, PART_SIZE, PART_SIZE + 1):
        path = folder / f"{size}.bin"
        block = hashlib.sha256(str(size).encode()).digest() * 32768  # 1 MiB, not all zeros
        with path.open("wb") as handle:
            remaining = size
            while remaining:
                remaining -= handle.write(block[: min(remaining, len(block))])
        files[size] = path
    yield files


@pytest.mark.parametrize("size", [0, PART_SIZE, PART_SIZE + 1], ids=["empty", "16MiB", "16MiB+1"])
def test_edge_sizes_are_stored_whole(
    size: int,
    edge_files: dict[int, Path],
    real_storage: DualStorageClient,
    unique_key: str,
    tmp_path: Path,
) -> None:
    """Observed rule (s3transfer): a single PUT below the 16 MiB threshold, multipart from
    exactly the threshold (one part) and above (two parts for 16 MiB + 1 byte)."""
    source = edge_files[size]
    expected_sha = hashlib.sha256(source.read_bytes()).hexdigest()
    expected_parts = 0 if size < PART_SIZE else -(-size // PART_SIZE)
    with source.open("rb") as handle:
        uploads = [
            real_storage.upload_weight(source, f"{unique_key}/w.bin"),
            real_storage.upload_dataset(handle, f"{unique_key}/d.bin"),
        ]
    kinds: tuple[ArtifactKind, ...] = ("weights", "datasets")
    for result, kind in zip(uploads, kinds, strict=True):
        assert (result.size, result.sha256) == (size, expected_sha)
        info = real_storage.head(kind, result.key)
        assert info.size == size and info.etag == result.etag
        if expected_parts:
            assert info.etag.endswith(f"-{expected_parts}"), info.etag
        else:
            assert "-" not in info.etag
            assert info.etag == hashlib.md5(source.read_bytes()).hexdigest()  # noqa: S324
    dest = tmp_path / "back.bin"
    assert real_storage.download_dataset(f"{unique_key}/d.bin", dest).sha256 == expected_sha
    assert dest.stat().st_size == size
    assert real_storage.download_weight(f"{unique_key}/w.bin", dest).sha256 == expected_sha


@pytest.mark.django_db
def test_empty_file_through_storage_model_and_command(
    real_storage: DualStorageClient, unique_key: str, tmp_path: Path
) -> None:
    empty_sha = hashlib.sha256(b"").hexdigest()
    storage = ExternalStorage()
    assert storage.save(f"{unique_key}/empty.zip", ContentFile(b"")) == f"{unique_key}/empty.zip"
    assert storage.size(f"{unique_key}/empty.zip") == 0
    dataset = Dataset(name="empty")
    dataset.file.save("empty.zip", ContentFile(b""))
    assert (dataset.size, dataset.sha256) == (0, empty_sha)
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    run("dualstorage_upload", "weights", str(path))
    weight = ModelWeight.objects.get()
    assert (weight.size, weight.sha256) == (0, empty_sha)
    assert real_storage.head("weights", weight.key).size == 0
