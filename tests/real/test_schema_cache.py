"""``get_schema``'s cache on SeaweedFS: the same rule as on moto
(``tests/test_schema_cache.py``), other credentials never served a cached schema, and
readers racing a writer only ever see whole versions. The ``clock`` fixture is a fake.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.base import ContentFile

from dual_storage_app.client import DualStorageClient
from dual_storage_app.exceptions import AccessDenied, ObjectNotFound
from dual_storage_app.models import ConfigSchema
from dual_storage_app.store.schema_cache import schema_cache
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import (
    SCHEMA_BUCKET,
    SCHEMA_WINDOW,
    FakeClock,
    log_for,
    other_client,
    real_settings,
    schema_body,
)

pytestmark = pytest.mark.real_s3


@pytest.fixture
def name(unique_key: str) -> str:
    return unique_key.replace("/", "-")


def test_real_window_then_one_conditional_get_answered_304(
    real_storage: DualStorageClient, clock: FakeClock, name: str
) -> None:
    real_storage.upload_schema(name, schema_body(1))
    log = log_for(real_storage)
    for _ in range(100):
        assert real_storage.get_schema(name) == schema_body(1)
    assert log.sent == [("GetObject", None)]
    log.clear()
    clock.advance(SCHEMA_WINDOW)
    assert real_storage.get_schema(name) == schema_body(1)
    assert len(log.sent) == 1 and log.sent[0][1] is not None
    assert log.answers == [("GetObject", 304)]


def test_real_change_elsewhere_is_seen_after_the_window_and_a_delete_raises(
    real_storage: DualStorageClient, clock: FakeClock, name: str
) -> None:
    real_storage.upload_schema(name, schema_body(1))
    assert real_storage.get_schema(name) == schema_body(1)
    raw = other_client(real_storage)
    raw.put_object(Bucket=SCHEMA_BUCKET, Key=f"{name}.json", Body=schema_body(2))
    clock.advance(SCHEMA_WINDOW / 2)
    assert real_storage.get_schema(name) == schema_body(1)
    clock.advance(SCHEMA_WINDOW / 2)
    assert real_storage.get_schema(name) == schema_body(2)
    raw.delete_object(Bucket=SCHEMA_BUCKET, Key=f"{name}.json")
    assert real_storage.get_schema(name) == schema_body(2)
    clock.advance(SCHEMA_WINDOW)
    with pytest.raises(ObjectNotFound, match="no such object"):
        real_storage.get_schema(name)


@pytest.mark.django_db(transaction=True)
def test_real_config_schema_versions_are_seen_at_once(
    real_storage: DualStorageClient, clock: FakeClock, name: str
) -> None:
    schema = ConfigSchema(name="s", framework=name)
    schema.file.save("s.json", ContentFile(b'{"v": 1}'))
    assert real_storage.get_schema(name) == b'{"v": 1}'
    schema.file.save("s.json", ContentFile(b'{"v": 2}'))  # publish: a server-side copy
    assert real_storage.get_schema(name) == b'{"v": 2}'
    schema.framework = f"{name}-renamed"
    schema.save()
    with pytest.raises(ObjectNotFound):
        real_storage.get_schema(name)
    assert real_storage.get_schema(f"{name}-renamed") == b'{"v": 2}'
    schema.delete()
    with pytest.raises(ObjectNotFound):
        real_storage.get_schema(f"{name}-renamed")


@pytest.mark.parametrize("access_key", ["intruder", "internal-access"])
def test_real_a_cached_schema_is_never_served_to_other_credentials(
    real_storage: DualStorageClient,
    s3_servers: dict[str, LocalS3Server],
    name: str,
    access_key: str,
) -> None:
    real_storage.upload_schema(name, schema_body(1))
    assert real_storage.get_schema(name) == schema_body(1)
    intruder = DualStorageClient(
        overrides=real_settings(
            s3_servers,
            INTERNAL_STORAGE_ACCESS_KEY=access_key,
            INTERNAL_STORAGE_SECRET_KEY="wrong-secret-" + "x" * 12,
        )
    )
    with pytest.raises(AccessDenied):
        intruder.get_schema(name)
    assert real_storage.get_schema(name) == schema_body(1)


def test_real_many_readers_and_one_writer_only_ever_see_whole_versions(
    real_storage: DualStorageClient, s3_servers: dict[str, LocalS3Server], name: str
) -> None:
    versions = {schema_body(v) for v in range(20)}
    real_storage.upload_schema(name, schema_body(0))
    revalidating = DualStorageClient(overrides=real_settings(s3_servers, SCHEMA_CACHE_SECONDS="0"))
    done = threading.Event()
    bad: list[bytes] = []

    def read(client: DualStorageClient) -> int:
        reads = 0
        while not done.is_set() or reads < 5:
            data = client.get_schema(name)
            if data not in versions:
                bad.append(data)
            reads += 1
        return reads

    with ThreadPoolExecutor(8) as pool:
        readers = [pool.submit(read, c) for c in [real_storage, revalidating] * 4]
        for version in range(1, 20):
            real_storage.upload_schema(name, schema_body(version))
        done.set()
        reads = sum(reader.result() for reader in readers)
    assert bad == [] and reads >= 40
    for client in (real_storage, revalidating):
        assert client.get_schema(name) == schema_body(19)  # our own last write, at once
    for entry in schema_cache._entries.values():  # every cached pair is whole
        assert entry.etag.strip('"') == hashlib.md5(entry.data).hexdigest()  # noqa: S324
