"""Network faults on the real S3 server: resets, 503 SlowDown, truncated and corrupted
bodies. Nothing is lost, nothing is corrupted silently.

Faults are injected by :mod:`tests.faultproxy`, a loopback proxy between the client and
the session's SeaweedFS servers; what was stored is always checked directly against the
real server, never through the proxy.

Retries: the stores use botocore's ``standard`` retry mode with ``total_max_attempts``
5: 5 attempts in all (providers.py). ``standard``
retries connection errors, resets, timeouts, 5xx and throttling codes such as
``SlowDown``, with full-jitter exponential backoff (base 50 ms for transient errors,
1 s for throttling, capped at 20 s) and a client-wide retry quota, so a flapping store
costs a bounded number of requests and cannot set off a retry storm. ``legacy`` has no
quota and fewer retryable cases; ``adaptive`` adds client-side rate limiting tuned to
AWS's own throttling. s3transfer adds up to 5 attempts of its own for a download whose
body breaks mid-stream (botocore cannot retry a body it has already handed over).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import DualStorageError, IntegrityError, StorageUnavailable
from dual_storage_app.store import transfer
from dual_storage_app.store.transfer import MiB
from dual_storage_app.testing.server import LocalS3Server
from tests.faultproxy import FaultProxy
from tests.helpers import close_clients, files_in, random_file, real_settings, sha256_file

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


MAX_ATTEMPTS = 5  # botocore "standard", total_max_attempts=5 (providers.py)


# Attempts per ranged GET whose body breaks mid-stream (each resumes from the byte reached).
DOWNLOAD_ATTEMPTS = transfer.DOWNLOAD_ATTEMPTS


def stored_sha256(client: DualStorageClient, kind: str, key: str) -> str:
    """SHA-256 of the object as the server holds it (a plain GET, no app code)."""
    store, bucket = client.locate(kind)  # type: ignore[arg-type]
    body = store.client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    try:
        for chunk in body.iter_chunks(MiB):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


def object_get(bucket: str, key: str) -> Callable[[str, str], bool]:
    """Matches a GetObject of ``bucket/key`` (not GetObjectTagging, also a GET there)."""

    def matches(method: str, target: str) -> bool:
        parts = urlsplit(target)
        return method == "GET" and parts.path == f"/{bucket}/{key}" and "tagging" not in parts.query

    return matches


@pytest.fixture
def proxies(s3_servers: dict[str, LocalS3Server]) -> Iterator[dict[str, FaultProxy]]:
    """A fresh fault proxy in front of each session server."""
    internal = FaultProxy(("127.0.0.1", s3_servers["internal"].s3_port)).start()
    external = FaultProxy(("127.0.0.1", s3_servers["external"].s3_port)).start()
    try:
        yield {"internal": internal, "external": external}
    finally:
        internal.stop()
        external.stop()


@pytest.fixture
def proxied(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, proxies: dict[str, FaultProxy]
) -> Iterator[DualStorageClient]:
    """A client whose both stores are reached through the fault proxies."""
    client = DualStorageClient(
        overrides=real_settings(
            s3_servers,
            INTERNAL_STORAGE_ENDPOINT=proxies["internal"].url,
            EXTERNAL_STORAGE_ENDPOINT=proxies["external"].url,
        )
    )
    yield client
    close_clients(client)


# -- a reset mid-part and 30% 503 SlowDown: the transfer completes -----------------------


def test_upload_survives_a_reset_mid_part_and_30pc_slowdown(
    proxied: DualStorageClient,
    direct: DualStorageClient,
    proxies: dict[str, FaultProxy],
    tmp_path: Path,
    unique_key: str,
) -> None:
    source = random_file(tmp_path / "ckpt.pth", 40 * MiB)  # 3 parts of 16 MiB
    proxy = proxies["internal"]
    proxied.upload_checkpoint(file_path=source, checkpoint_key=f"{unique_key}/baseline.pth")
    baseline = len(proxy.requests())  # requests of one fault-free upload
    proxy.clear()

    reset = proxy.reset_after(
        5 * MiB, phase="request", method="PUT", path_contains="partNumber=2", times=1
    )
    # At most 3 refusals of one request: with the reset, 4 failures < 5 attempts, so
    # the outcome does not depend on the RNG (a request refused 6 times in a row by a
    # real 30% would fail: 0.3**6 = 0.07% per request).
    slowdown = proxy.slowdown(0.3, seed=4, max_per_request=3)
    started = time.monotonic()
    result = proxied.upload_checkpoint(file_path=source, checkpoint_key=f"{unique_key}/c.pth")
    elapsed = time.monotonic() - started

    assert result.sha256 == sha256_file(source) and result.size == 40 * MiB
    assert stored_sha256(direct, "checkpoints", f"{unique_key}/c.pth") == result.sha256
    assert reset.fired == 1 and len(proxy.requests("reset-request")) == 1
    refused = len(proxy.requests("slowdown"))
    total = len(proxy.requests())
    assert refused == slowdown.fired > 0
    assert total == baseline + refused + 1  # every failure cost exactly one retry
    assert total <= baseline * MAX_ATTEMPTS
    print(
        f"\nupload 40 MiB: {baseline} requests fault-free; with faults {total} "
        f"({refused} SlowDown, 1 reset) in {elapsed:.1f} s"
    )


def test_download_survives_a_reset_mid_body_and_30pc_slowdown(
    proxied: DualStorageClient,
    direct: DualStorageClient,
    proxies: dict[str, FaultProxy],
    tmp_path: Path,
    unique_key: str,
) -> None:
    source = random_file(tmp_path / "data.zip", 40 * MiB)
    key = f"{unique_key}/data.zip"
    with source.open("rb") as handle:
        uploaded = direct.upload_dataset(file_obj=handle, dataset_key=key)
    proxy = proxies["external"]
    proxied.download_dataset(dataset_key=key, dest_path=tmp_path / "baseline.zip")
    baseline = len(proxy.requests())
    proxy.clear()

    reset = proxy.reset_after(3 * MiB, where=object_get("training-datasets", key), times=1)
    slowdown = proxy.slowdown(0.3, seed=8, max_per_request=3)
    dest = tmp_path / "dest.zip"
    dest.write_bytes(b"previous")
    started = time.monotonic()
    result = proxied.download_dataset(dataset_key=key, dest_path=dest)
    elapsed = time.monotonic() - started

    assert result.sha256 == uploaded.sha256 == sha256_file(dest) == sha256_file(source)
    assert reset.fired == 1 and slowdown.fired > 0
    total = len(proxy.requests())
    assert total == baseline + slowdown.fired + 1
    assert total <= baseline * MAX_ATTEMPTS
    assert files_in(tmp_path) == ["baseline.zip", "data.zip", "dest.zip"]
    print(
        f"\ndownload 40 MiB: {baseline} requests fault-free; with faults {total} "
        f"({slowdown.fired} SlowDown, 1 reset) in {elapsed:.1f} s"
    )


# -- truncated and corrupted bodies: detected, nothing written ---------------------------


@pytest.fixture
def small_weight(direct: DualStorageClient, tmp_path: Path, unique_key: str) -> tuple[str, str]:
    """A 3 MiB weight uploaded directly (single PUT, SHA-256 tag recorded): key, hash."""
    source = random_file(tmp_path / "w.src", 3 * MiB)
    key = f"{unique_key}/w.pth"
    result = direct.upload_weight(file_path=source, weight_key=key)
    source.unlink()
    return key, result.sha256


def test_truncated_get_is_a_clear_error_and_writes_nothing(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    proxy = proxies["internal"]
    # 256 KiB per response: 3 MiB would need 12 resumed GETs, more than the attempts.
    truncate = proxy.truncate_after(256 * 1024, where=object_get("model-weights", key))
    store, bucket = proxied.locate("weights")
    fresh, existing = tmp_path / "fresh.pth", tmp_path / "existing.pth"
    existing.write_bytes(b"previous")
    for dest in (fresh, existing):
        with pytest.raises(DualStorageError) as caught:
            store.download(bucket, key, dest, expected_sha256=sha)
        assert isinstance(caught.value, (StorageUnavailable, IntegrityError))
        assert "internal store" in str(caught.value) and key in str(caught.value)
    assert not fresh.exists() and existing.read_bytes() == b"previous"
    assert files_in(tmp_path) == ["existing.pth"]
    # Each download resumed its broken body DOWNLOAD_ATTEMPTS times, then gave up.
    assert truncate.fired == 2 * DOWNLOAD_ATTEMPTS
    print(f"\ntruncated GET: {type(caught.value).__name__}: {caught.value}")


def test_a_truncation_once_is_retried_and_the_bytes_are_right(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    proxies["internal"].truncate_after(MiB, where=object_get("model-weights", key), times=1)
    result = proxied.download_weight(weight_key=key, dest_path=tmp_path / "w.pth")
    assert result.sha256 == sha == sha256_file(tmp_path / "w.pth")


def test_every_body_cut_short_still_completes_by_resuming(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    """Each GET breaks after 1 MiB; each retry asks only for the bytes still missing
    (``Range`` from the byte reached), so 3 MiB arrive in three GETs, verified."""
    key, sha = small_weight
    cut = proxies["internal"].truncate_after(MiB, where=object_get("model-weights", key))
    result = proxied.download_weight(weight_key=key, dest_path=tmp_path / "w.pth")
    assert result.sha256 == sha == sha256_file(tmp_path / "w.pth")
    # Three GETs, each cut at 1 MiB; the third asked for the last MiB only, so its cut
    # fell exactly at its end. (s3transfer restarts a range from its start: it never
    # gets past the first MiB and gives up after 5 attempts.)
    assert cut.fired == 3


def test_flipped_byte_is_an_integrity_error_and_writes_nothing(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    flip = proxies["internal"].flip_byte(2 * MiB + 5, where=object_get("model-weights", key))
    store, bucket = proxied.locate("weights")
    fresh, existing = tmp_path / "fresh.pth", tmp_path / "existing.pth"
    existing.write_bytes(b"previous")
    for dest in (fresh, existing):
        with pytest.raises(IntegrityError, match="SHA-256") as caught:
            store.download(bucket, key, dest, expected_sha256=sha)
        assert "internal store" in str(caught.value) and key in str(caught.value)
    assert not fresh.exists() and existing.read_bytes() == b"previous"
    assert files_in(tmp_path) == ["existing.pth"]
    assert flip.fired == 2


def test_client_download_detects_a_flipped_byte_against_the_recorded_sha256(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, _ = small_weight
    proxies["internal"].flip_byte(12345, where=object_get("model-weights", key))
    existing = tmp_path / "existing.pth"
    existing.write_bytes(b"previous")
    with pytest.raises(IntegrityError, match="recorded at upload"):
        proxied.download_weight(weight_key=key, dest_path=tmp_path / "fresh.pth")
    with pytest.raises(IntegrityError, match="recorded at upload"):
        proxied.download_weight(weight_key=key, dest_path=existing)
    assert existing.read_bytes() == b"previous"
    assert files_in(tmp_path) == ["existing.pth"]


def test_a_byte_flipped_on_a_retried_get_is_detected(
    proxied: DualStorageClient,
    proxies: dict[str, FaultProxy],
    small_weight: tuple[str, str],
    tmp_path: Path,
) -> None:
    key, sha = small_weight
    proxy = proxies["internal"]
    get = object_get("model-weights", key)
    proxy.reset_after(2 * MiB, where=get, times=1)  # first GET breaks after 2 MiB...
    proxy.flip_byte(1000, where=get, skip=1, times=1)  # ...its retry carries a bad byte
    dest = tmp_path / "w.pth"
    try:
        proxied.download_weight(weight_key=key, dest_path=dest)
    except IntegrityError:
        assert not dest.exists()
        return
    corrupt = sha256_file(dest) != sha
    pytest.fail(f"download succeeded; file on disk {'corrupt' if corrupt else 'intact'}")
