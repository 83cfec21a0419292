"""``dualstorage_cors`` on the real servers: show, set and check the browser-upload rule on
the external datasets bucket (each test on a bucket of its own, deleted after)."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings as SettingsWrapper

from dual_storage_app import cors
from dual_storage_app.client import dual_storage
from dual_storage_app.testing.pair import EXTERNAL_SECRET, INTERNAL_SECRET
from dual_storage_app.testing.server import LocalS3Server
from tests.helpers import WRONG_SECRET, real_settings, run, run_json
from tests.requestlog import CountingProxy

pytestmark = pytest.mark.real_s3

SITE = "http://localhost:8000"
OTHER_SITE = "http://127.0.0.1:8000"
FOREIGN_RULE: dict[str, Any] = {
    "ID": "someone-elses",
    "AllowedOrigins": ["https://viewer.example.org"],
    "AllowedMethods": ["GET"],
    "MaxAgeSeconds": 60,
}


@pytest.fixture
def bucket(
    s3_servers: dict[str, LocalS3Server], _real_buckets: None, settings: SettingsWrapper
) -> Iterator[str]:
    """A fresh datasets bucket on the external server, the app pointed at it, and no
    origins configured; its CORS configuration and the bucket are deleted after."""
    name = f"cors-{uuid.uuid4().hex[:12]}"
    server = s3_servers["external"]
    server.client().create_bucket(Bucket=name)
    settings.DUAL_STORAGE = real_settings(s3_servers, EXTERNAL_BUCKET_DATASETS=name)
    settings.CSRF_TRUSTED_ORIGINS = []
    with contextlib.suppress(AttributeError):
        del settings.DUAL_STORAGE_CORS_ORIGINS
    try:
        yield name
    finally:
        server.client().delete_bucket_cors(Bucket=name)
        server.delete_bucket(name)


def rules_of(server: LocalS3Server, bucket: str) -> list[dict[str, Any]]:
    """The bucket's CORS rules as the server holds them (``[]`` for none)."""
    client = server.client()
    try:
        return list(client.get_bucket_cors(Bucket=bucket)["CORSRules"])  # type: ignore[arg-type]
    except client.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchCORSConfiguration"
        return []


def ours(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for rule in rules if rule.get("ID") == cors.RULE_ID]


def failure(*args: str) -> tuple[str, str]:
    """The message of the CommandError the command raises, and what it printed."""
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("dualstorage_cors", *args, stdout=out, stderr=StringIO(), no_color=True)
    return str(caught.value), out.getvalue()


# -- show ------------------------------------------------------------------------------


def test_show_says_there_is_no_rule(bucket: str) -> None:
    assert run("dualstorage_cors").splitlines() == [
        f"bucket {bucket!r} (external store, minio): no CORS rule"
    ]
    assert run_json("dualstorage_cors", "--show") == {
        "store": "external",
        "bucket": bucket,
        "rules": [],
    }


def test_set_then_show_has_our_rule(bucket: str, s3_servers: dict[str, LocalS3Server]) -> None:
    done = run_json("dualstorage_cors", "--set", "--origin", SITE, "--origin", OTHER_SITE)
    assert done["action"] == "added" and done["previous"] is None
    assert done["origins"] == [SITE, OTHER_SITE] and done["origins_from"] == "--origin"

    shown = run_json("dualstorage_cors")
    assert shown["rules"] == [cors.upload_rule([SITE, OTHER_SITE])]
    assert shown["rules"][0] == {
        "ID": "dual-storage-uploads",
        "AllowedOrigins": [SITE, OTHER_SITE],
        "AllowedMethods": ["GET", "HEAD", "PUT"],
        "AllowedHeaders": ["content-type", "if-none-match", "x-amz-checksum-sha256"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }
    assert rules_of(s3_servers["external"], bucket) == shown["rules"]  # what the store holds

    text = run("dualstorage_cors")
    assert "1 CORS rule(s)" in text and "'dual-storage-uploads' (ours)" in text
    assert f"origins: {SITE}, {OTHER_SITE}" in text and "max age: 3600 s" in text


def test_set_keeps_other_rules_and_is_idempotent(
    bucket: str, s3_servers: dict[str, LocalS3Server]
) -> None:
    server = s3_servers["external"]
    server.client().put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={"CORSRules": [FOREIGN_RULE]},  # type: ignore[list-item]
    )

    first = run("dualstorage_cors", "--set", "--origin", SITE)
    assert f"Added rule 'dual-storage-uploads' on bucket {bucket!r}" in first
    assert "1 other rule(s) kept" in first
    second = run_json("dualstorage_cors", "--set", "--origin", SITE)
    assert second["action"] == "unchanged"
    after = rules_of(server, bucket)
    assert [rule.get("ID") for rule in after] == ["someone-elses", "dual-storage-uploads"]
    assert after[0]["AllowedOrigins"] == FOREIGN_RULE["AllowedOrigins"]
    assert len(ours(after)) == 1

    changed = run("dualstorage_cors", "--set", "--origin", OTHER_SITE)
    assert "Replaced rule" in changed
    assert f"origins added: {OTHER_SITE}" in changed and f"origins removed: {SITE}" in changed
    after = rules_of(server, bucket)
    assert [rule.get("ID") for rule in after] == ["someone-elses", "dual-storage-uploads"]
    assert ours(after)[0]["AllowedOrigins"] == [OTHER_SITE]


def test_merge_rule_replaces_only_ours() -> None:
    old = cors.upload_rule([SITE])
    new = cors.upload_rule([OTHER_SITE])
    assert cors.merge_rule([FOREIGN_RULE, old, old], new) == [FOREIGN_RULE, new]
    assert cors.merge_rule([FOREIGN_RULE], new) == [FOREIGN_RULE, new]
    assert cors.merge_rule([], new) == [new]


# -- check -----------------------------------------------------------------------------


def test_check_passes_after_set_and_the_preflight_answers(bucket: str) -> None:
    run("dualstorage_cors", "--set", "--origin", SITE, "--origin", OTHER_SITE)

    out = run("dualstorage_cors", "--check", "--origin", SITE, "--origin", OTHER_SITE)
    assert f"OK   {SITE}" in out and f"OK   {OTHER_SITE}" in out and "FAIL" not in out
    report = run_json("dualstorage_cors", "--check", "--origin", SITE)
    assert report["ok"] is True and report["problems"] == [] and report["rules_checked"]
    url = report["preflight_url"]
    assert url.endswith(f"/{bucket}/{cors.CHECK_KEY}")

    answer = cors.preflight(url, SITE)  # what a browser at SITE is told before its PUT
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == SITE
    assert "PUT" in answer.headers["access-control-allow-methods"]
    assert "x-amz-checksum-sha256" in answer.headers["access-control-allow-headers"].lower()
    assert answer.problems("PUT", cors.REQUIRED_PUT_HEADERS) == []

    stranger = cors.preflight(url, "https://evil.example")
    assert stranger.status == 403
    assert "access-control-allow-origin" not in stranger.headers


def test_check_fails_naming_the_origin_when_there_is_no_rule(bucket: str) -> None:
    message, printed = failure("--check", "--origin", SITE)
    assert f"{SITE}: no CORS rule on the bucket allows this origin" in message
    assert f"{SITE}: the preflight OPTIONS" in message and "answered 403" in message
    assert "dualstorage_cors --set" in message
    assert f"FAIL {SITE}" in printed


def test_check_fails_for_an_origin_the_rule_does_not_name(bucket: str) -> None:
    run("dualstorage_cors", "--set", "--origin", SITE)
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "dualstorage_cors",
            "--check",
            "--origin",
            SITE,
            "--origin",
            OTHER_SITE,
            "--json",
            stdout=out,
            stderr=StringIO(),
        )
    message = str(caught.value)
    assert OTHER_SITE in message and f"{SITE}:" not in message
    report = json.loads(out.getvalue())
    assert report["ok"] is False
    assert report["problems"] and all(p.startswith(f"{OTHER_SITE}: ") for p in report["problems"])


def test_check_finds_a_rule_without_the_checksum_header(
    bucket: str, s3_servers: dict[str, LocalS3Server]
) -> None:
    """A hand-made rule that allows the origin PUT and GET but not the header every
    part's upload sends: both the rules and the preflight say so."""
    lacking = {
        "ID": "hand-made",
        "AllowedOrigins": [SITE],
        "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["content-type"],
        "ExposeHeaders": ["ETag"],
    }
    s3_servers["external"].client().put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={"CORSRules": [lacking]},  # type: ignore[list-item]
    )
    message, _ = failure("--check", "--origin", SITE)
    assert f"{SITE}: no CORS rule allows it PUT with the header(s) x-amz-checksum-sha256" in message
    # The preflight: SeaweedFS then answers with no Access-Control-Allow-Headers at all.
    assert re.search(
        r"preflight OPTIONS \S+ does not allow the header\(s\) [^.;]*x-amz-checksum", message
    )


def test_rule_problems_name_what_is_missing() -> None:
    rule = cors.upload_rule([SITE])
    assert cors.rule_problems([rule], SITE) == []
    assert cors.rule_problems([rule], OTHER_SITE) == [
        "no CORS rule on the bucket allows this origin"
    ]
    wildcard = {"AllowedOrigins": ["http://*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["*"]}
    assert cors.rule_problems([wildcard], SITE) == ["no CORS rule allows it PUT"]
    no_etag = {**rule, "ExposeHeaders": []}
    assert cors.rule_problems([no_etag], SITE) == [
        "its PUT rule does not expose the ETag header (multipart uploads need it)"
    ]


def test_check_on_gcs_skips_the_rules_and_set_is_refused(
    bucket: str, s3_servers: dict[str, LocalS3Server], settings: SettingsWrapper
) -> None:
    """GCS's rules are set with gcloud, not the S3 API: --set says how; --check still
    sends the real preflight (here to a server whose rule was set by hand)."""
    settings.DUAL_STORAGE = real_settings(
        s3_servers, EXTERNAL_BUCKET_DATASETS=bucket, EXTERNAL_STORAGE_PROVIDER="gcs"
    )
    message, _ = failure("--set", "--origin", SITE)
    assert f"gcloud storage buckets update gs://{bucket} --cors-file=cors.json" in message
    assert "gsutil cors set" in message
    assert rules_of(s3_servers["external"], bucket) == []  # nothing was sent

    failed, _ = failure("--check", "--origin", SITE)  # no rule yet: the preflight fails
    assert f"{SITE}: the preflight OPTIONS" in failed and "no CORS rule" not in failed

    s3_servers["external"].client().put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={"CORSRules": [cors.upload_rule([SITE])]},  # type: ignore[list-item]
    )
    report = run_json("dualstorage_cors", "--check", "--origin", SITE)
    assert report["ok"] is True and report["rules_checked"] is False
    assert cors.gcs_cors([SITE])[0]["origin"] == [SITE]


def test_check_sends_the_preflight_to_the_public_endpoint(
    bucket: str, s3_servers: dict[str, LocalS3Server], settings: SettingsWrapper
) -> None:
    public = f"http://localhost:{s3_servers['external'].s3_port}"
    settings.DUAL_STORAGE = real_settings(
        s3_servers, EXTERNAL_BUCKET_DATASETS=bucket, EXTERNAL_STORAGE_PUBLIC_ENDPOINT=public
    )
    run("dualstorage_cors", "--set", "--origin", SITE)
    report = run_json("dualstorage_cors", "--check", "--origin", SITE)
    assert report["preflight_url"] == f"{public}/{bucket}/{cors.CHECK_KEY}"
    assert report["ok"] is True


# -- origins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("*", "wildcards are not allowed"),
        ("https://*.example.com", "wildcards are not allowed"),
        ("ftp://example.com", "scheme must be http or https"),
        ("localhost:8000", "scheme must be http or https"),
        ("https://example.com/app", "no path"),
        ("https://example.com/", "no path"),
        ("https://example.com?x=1", "no path, query"),
        ("https://user@example.com", "user info"),
        ("https://", "no host"),
        ("http://example.com:99999", "not a valid URL"),
    ],
)
def test_a_bad_origin_is_refused_naming_it(
    bucket: str, s3_servers: dict[str, LocalS3Server], value: str, why: str
) -> None:
    message, _ = failure("--set", "--origin", SITE, "--origin", value)
    assert f"Origin {value!r} from --origin refused" in message and why in message
    assert rules_of(s3_servers["external"], bucket) == []  # refused before any request


def test_origins_are_normalised_as_browsers_send_them() -> None:
    assert cors.validate_origin("HTTPS://App.Example.COM:443") == "https://app.example.com"
    assert cors.validate_origin("http://[::1]:8000") == "http://[::1]:8000"
    assert cors.validate_origin(" http://localhost:80 ") == "http://localhost"


def test_origins_come_from_the_cors_setting_first(
    bucket: str, settings: SettingsWrapper, s3_servers: dict[str, LocalS3Server]
) -> None:
    settings.DUAL_STORAGE_CORS_ORIGINS = ["https://App.example.com:443", "https://app.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://csrf.example.com"]
    done = run_json("dualstorage_cors", "--set")
    assert done["origins"] == ["https://app.example.com"]
    assert done["origins_from"] == "settings.DUAL_STORAGE_CORS_ORIGINS"
    assert ours(rules_of(s3_servers["external"], bucket))[0]["AllowedOrigins"] == [
        "https://app.example.com"
    ]
    # --origin wins over both settings
    assert run_json("dualstorage_cors", "--set", "--origin", SITE)["origins"] == [SITE]


def test_origins_fall_back_to_csrf_trusted_origins(bucket: str, settings: SettingsWrapper) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://csrf.example.com"]
    done = run_json("dualstorage_cors", "--set")
    assert done["origins"] == ["https://csrf.example.com"]
    assert done["origins_from"] == "settings.CSRF_TRUSTED_ORIGINS"
    report = run_json("dualstorage_cors", "--check")
    assert report["origins"] == ["https://csrf.example.com"] and report["ok"] is True


def test_a_wildcard_in_csrf_trusted_origins_is_refused_naming_it(
    bucket: str, settings: SettingsWrapper
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    message, _ = failure("--set")
    assert "'https://*.example.com' from settings.CSRF_TRUSTED_ORIGINS refused" in message


def test_a_setting_that_is_not_a_list_is_refused(bucket: str, settings: SettingsWrapper) -> None:
    settings.DUAL_STORAGE_CORS_ORIGINS = "https://app.example.com"
    message, _ = failure("--set")
    assert "settings.DUAL_STORAGE_CORS_ORIGINS must be a list" in message


@pytest.mark.parametrize("mode", ["--set", "--check"])
def test_no_origins_is_an_error_naming_where_to_set_them(
    bucket: str, s3_servers: dict[str, LocalS3Server], mode: str
) -> None:
    message, _ = failure(mode)
    assert "--origin" in message
    assert "settings.DUAL_STORAGE_CORS_ORIGINS" in message
    assert "settings.CSRF_TRUSTED_ORIGINS" in message
    assert rules_of(s3_servers["external"], bucket) == []


# -- the internal store, errors --------------------------------------------------------


def test_the_command_never_touches_the_internal_store(
    bucket: str, s3_servers: dict[str, LocalS3Server], settings: SettingsWrapper
) -> None:
    internal = CountingProxy("internal", ("127.0.0.1", s3_servers["internal"].s3_port))
    internal.start()
    try:
        settings.DUAL_STORAGE = real_settings(
            s3_servers, EXTERNAL_BUCKET_DATASETS=bucket, INTERNAL_STORAGE_ENDPOINT=internal.url
        )
        run("dualstorage_cors")
        run("dualstorage_cors", "--set", "--origin", SITE)
        run("dualstorage_cors", "--check", "--origin", SITE)
        with contextlib.suppress(CommandError):
            run("dualstorage_cors", "--check", "--origin", OTHER_SITE)
        assert internal.take() == []
        # The proxy does see what is sent to the internal store.
        store, weights = dual_storage.locate("weights")
        store.create_bucket(weights)
        assert [request.name for request in internal.take()] == [("HEAD", "HeadBucket")]
    finally:
        dual_storage.internal.client.close()
        internal.stop()
    for internal_bucket in ("model-weights", "training-checkpoints", "config-schemas"):
        assert rules_of(s3_servers["internal"], internal_bucket) == []


def test_a_refused_key_is_a_command_error_without_secrets(
    bucket: str, s3_servers: dict[str, LocalS3Server], settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(
        s3_servers, EXTERNAL_BUCKET_DATASETS=bucket, EXTERNAL_STORAGE_SECRET_KEY=WRONG_SECRET
    )
    for args in (("--show",), ("--set", "--origin", SITE)):
        message, _ = failure(*args)
        assert "external store" in message and "refused" in message
        for secret in (WRONG_SECRET, EXTERNAL_SECRET, INTERNAL_SECRET):
            assert secret not in message
        assert s3_servers["internal"].endpoint_url not in message


def test_a_missing_bucket_says_to_create_it(
    s3_servers: dict[str, LocalS3Server], settings: SettingsWrapper
) -> None:
    settings.DUAL_STORAGE = real_settings(s3_servers, EXTERNAL_BUCKET_DATASETS="cors-no-such")
    message, _ = failure("--set", "--origin", SITE)
    assert "bucket does not exist" in message and "dualstorage_createbuckets" in message
