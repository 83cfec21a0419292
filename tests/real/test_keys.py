"""The key validator at every entry point, on the real servers: every Python entry
point, storage, listing and command refuses a bad key the same way (``validate_key``'s
message), before any request; odd but valid keys round-trip, list and presign exactly;
an NFD spelling never aliases the NFC object. Without a server: ``tests/test_keys.py``.

Issue 4, item 3. ``StartedRequests`` counts every S3 operation the app *starts* (the
botocore ``before-parameter-build`` event, which presigning emits too), so "zero" means
the key was refused before anything was built, signed or sent.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import InvalidKey, NoPublicURL
from dual_storage_app.keys import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, validate_key
from dual_storage_app.kinds import ArtifactKind
from dual_storage_app.storages import ExternalStorage, InternalStorage
from dual_storage_app.store import Store
from tests.helpers import (
    HOSTILE_KEYS,
    LONG_KEY,
    LONG_SEGMENT,
    NFC_NAME,
    NFD_NAME,
    ODD_VALID_NAMES,
    StartedRequests,
    run_with_stderr,
)
from tests.http import fetch

pytestmark = pytest.mark.real_s3


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


def test_the_request_log_sees_requests_and_presigning(
    real_storage: DualStorageClient, unique_key: str
) -> None:
    """The control for every "nothing was started" assertion below."""
    log = StartedRequests().watch(real_storage)
    real_storage.upload_dataset(io.BytesIO(b"x"), f"{unique_key}/x")
    assert "PutObject" in [name for _, name in log.sent]
    sent = len(log.sent)
    real_storage.generate_dataset_presigned_url(f"{unique_key}/x", 60)
    assert log.started[-1][1] == "GetObject" and len(log.sent) == sent  # signed, not sent


@pytest.fixture
def requests_started(real_storage: DualStorageClient) -> StartedRequests:
    return StartedRequests().watch(real_storage)


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


# -- the Python API ----------------------------------------------------------------------


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_every_python_entry_point_refuses_the_key_identically(
    key: str,
    real_storage: DualStorageClient,
    requests_started: StartedRequests,
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
    key: str, real_storage: DualStorageClient, requests_started: StartedRequests
) -> None:
    for kind in INTERNAL_KINDS:
        with pytest.raises(NoPublicURL):
            InternalStorage(kind=kind).url(key)
    requests_started.assert_nothing()


@pytest.mark.parametrize("path", HOSTILE_KEYS)
def test_listdir_refuses_hostile_directory_paths(
    path: str, real_storage: DualStorageClient, requests_started: StartedRequests
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
    key: str, real_storage: DualStorageClient, requests_started: StartedRequests
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
            run_with_stderr("dualstorage_list", kind, "--store", "--prefix", key)
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
    name: str, real_storage: DualStorageClient, requests_started: StartedRequests
) -> None:
    """``upload_schema``/``get_schema`` map a name to ``<name>.json``; a hostile name is
    refused like a hostile key (InvalidKey, so Django answers 400 if one escapes a view)."""
    with pytest.raises(InvalidKey):
        real_storage.upload_schema(name, b"{}")
    with pytest.raises(InvalidKey):
        real_storage.get_schema(name)
    requests_started.assert_nothing()


# -- management commands -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_commands_refuse_the_key_with_the_validators_message(
    key: str, real_storage: DualStorageClient, requests_started: StartedRequests, tmp_path: Path
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
            run_with_stderr(*argv)
        assert str(caught.value) == refusal(key, store, bucket), argv
    requests_started.assert_nothing()
    assert list(tmp_path.iterdir()) == []


# -- keys that are odd but valid ---------------------------------------------------------


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
    log = StartedRequests().watch(real_storage)
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
