"""The shipped pytest plugin (``dual_storage_app.testing.plugin``): real servers, fresh
empty buckets per test and per module, and the README's example in a project of its own."""

from __future__ import annotations

import io
import textwrap

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from dual_storage_app.client import DualStorageClient
from dual_storage_app.kinds import REGISTRY
from dual_storage_app.models import Dataset, ModelWeight
from dual_storage_app.testing.pair import S3Servers, fresh_buckets

pytestmark = pytest.mark.real_s3
_SEEN: list[str] = []  # bucket names earlier tests of this module were given


def _bucket_names(client: DualStorageClient) -> dict[str, str]:
    return {kind: client.locate(kind)[1] for kind in REGISTRY}


def _listed(server_client: object) -> set[str]:
    buckets = server_client.list_buckets()["Buckets"]  # type: ignore[attr-defined]
    return {bucket["Name"] for bucket in buckets}


def test_the_pair_has_two_servers_with_different_credentials(
    dual_storage_servers: S3Servers,
) -> None:
    internal, external = dual_storage_servers
    assert internal.endpoint_url != external.endpoint_url
    assert (internal.access_key, internal.secret_key) != (external.access_key, external.secret_key)
    assert all(
        server.endpoint_url.startswith("http://127.0.0.1:") for server in (internal, external)
    )


@pytest.mark.django_db
def test_fresh_buckets_are_empty_used_and_deleted_after(dual_storage_servers: S3Servers) -> None:
    with fresh_buckets(dual_storage_servers) as client:
        names = _bucket_names(client)
        assert len(set(names.values())) == 4
        assert all(
            name not in {spec.default_bucket for spec in REGISTRY.values()}
            for name in names.values()
        )
        assert getattr(settings, "DUAL_STORAGE", {})["INTERNAL_BUCKET_WEIGHTS"] == names["weights"]
        for kind in REGISTRY:
            assert list(client.list_objects(kind)) == []
        weight = ModelWeight(name="w")
        weight.file.save("w.pth", ContentFile(b"weights"))
        dataset = Dataset(name="d")
        dataset.file.save("d.zip", ContentFile(b"data"))
        assert (weight.bucket, dataset.bucket) == (names["weights"], names["datasets"])
        internal = _listed(dual_storage_servers.internal.client())
        external = _listed(dual_storage_servers.external.client())
        assert {names["weights"], names["checkpoints"], names["schemas"]} <= internal
        assert names["datasets"] in external and names["datasets"] not in internal
    # Gone afterwards, objects and all; the settings are restored.
    assert not set(names.values()) & _listed(dual_storage_servers.internal.client())
    assert names["datasets"] not in _listed(dual_storage_servers.external.client())
    assert getattr(settings, "DUAL_STORAGE", {}).get("INTERNAL_BUCKET_WEIGHTS") != names["weights"]


@pytest.mark.django_db
def test_each_test_gets_its_own_empty_buckets(dual_storage_buckets: DualStorageClient) -> None:
    assert list(dual_storage_buckets.list_objects("weights")) == []
    dual_storage_buckets.upload_schema("fw", b"{}")
    assert dual_storage_buckets.get_schema("fw") == b"{}"
    _SEEN.append(_bucket_names(dual_storage_buckets)["schemas"])


@pytest.mark.django_db
def test_each_test_gets_its_own_empty_buckets_again(
    dual_storage_buckets: DualStorageClient,
) -> None:
    assert list(dual_storage_buckets.list_objects("schemas")) == []  # not the last test's
    assert _bucket_names(dual_storage_buckets)["schemas"] not in _SEEN


def test_a_module_shares_its_buckets_first(dual_storage_module_buckets: DualStorageClient) -> None:
    # Through the store itself: the client's writes would record rows (the catalog),
    # which each test's database rollback takes back with their objects.
    store, bucket = dual_storage_module_buckets.locate("weights")
    store.upload(bucket, "shared.bin", io.BytesIO(b"shared"))
    _SEEN.append(_bucket_names(dual_storage_module_buckets)["schemas"])


def test_a_module_shares_its_buckets_second(
    dual_storage_module_buckets: DualStorageClient,
) -> None:
    assert _bucket_names(dual_storage_module_buckets)["schemas"] == _SEEN[-1]
    store, bucket = dual_storage_module_buckets.locate("weights")
    assert store.read_object(bucket, "shared.bin")[0] == b"shared"


def test_the_readme_example_runs_in_a_project_of_its_own(pytester: pytest.Pytester) -> None:
    """A user's project: its own settings, the plugin enabled in its conftest, the
    README's test, run by pytest in a fresh process."""
    pytester.makepyfile(
        project_settings=textwrap.dedent(
            """
            SECRET_KEY = "user-project"
            INSTALLED_APPS = [
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "dual_storage_app",
            ]
            DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
            USE_TZ = True
            """
        ),
        conftest='pytest_plugins = ["dual_storage_app.testing.plugin"]\n',
        test_weights=textwrap.dedent(
            """
            from django.core.files.base import ContentFile
            from dual_storage_app.models import ModelWeight


            def test_a_weight_is_stored(dual_storage_buckets, db):
                weight = ModelWeight(name="tiny")
                weight.file.save("tiny.pth", ContentFile(b"weights"))
                assert dual_storage_buckets.exists("weights", weight.key)
                assert dual_storage_buckets.head("weights", weight.key).size == 7
            """
        ),
    )
    result = pytester.runpytest_subprocess(
        "-p", "pytest_django", "--ds=project_settings", "-p", "no:cacheprovider", timeout=180
    )
    result.assert_outcomes(passed=1)
