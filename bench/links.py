"""Presigned GET links for a page of 1,000 datasets (signing only: no request is sent).

Contenders: our ``Store.presign_get``, our ``ExternalStorage.url()`` (what a Django
``FileField`` calls) with the link audit on, as a project runs it (records written in
batches, the rest at the end of the page as at the end of a request), raw boto3
``generate_presigned_url`` and django-storages' ``S3Storage.url()``, all signing for the
bench's server with the same keys. Diagnostics show what the audit costs: ``url()`` with
the audit off, and the client's ``generate_dataset_presigned_url``, which writes each
record at once (one INSERT per link). Every link of
ours asks for ``Content-Disposition: attachment; filename=...`` (store/disposition.py);
the peers sign that same override, so every contender makes the same, safe link.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storages.backends.s3 import S3Storage

from dual_storage_app.store.disposition import content_disposition

from .contenders import DIAGNOSTIC, OURS, our_store, raw_client
from .djangoenv import configure
from .report import Result
from .target import Target

OPERATION = "presign x1000"
PAGE = 1000
EXPIRES = 3600


def _signers(target: Target, keys: list[str]) -> dict[str, Callable[[], object]]:
    """One callable per contender, each signing every key once."""
    configure(target)  # Django as a project runs it: ExternalStorage reads DUAL_STORAGE
    from django.conf import settings
    from django.test import override_settings

    from dual_storage_app.audit import audit
    from dual_storage_app.client import dual_storage
    from dual_storage_app.storages import ExternalStorage

    store = our_store(target, "external")
    client = raw_client(target)
    field_storage = ExternalStorage()
    plain_storage = S3Storage(
        bucket_name=target.bucket,
        endpoint_url=target.endpoint_url,
        access_key=target.access_key,
        secret_key=target.secret_key,
        region_name=target.region,
        addressing_style="path",
        signature_version="s3v4",
        querystring_auth=True,
        querystring_expire=EXPIRES,
    )
    bucket = target.bucket

    def attachment(key: str) -> dict[str, str]:
        return {"ResponseContentDisposition": content_disposition("attachment", key[9:])}

    def audited_page() -> list[str]:
        page = [field_storage.url(key) for key in keys]
        audit.flush_thread()  # what the end of the request does
        return page

    def unaudited_page() -> list[str]:
        current = dict(getattr(settings, "DUAL_STORAGE", {}))
        with override_settings(DUAL_STORAGE={**current, "LINK_AUDIT": "false"}):
            return [field_storage.url(key) for key in keys]

    return {
        OURS: lambda: [store.presign_get(bucket, key, EXPIRES) for key in keys],
        f"{OURS} FileField url() + audit": audited_page,
        f"{OURS} FileField url(), audit off {DIAGNOSTIC}": unaudited_page,
        f"{OURS} client link + audit, one INSERT each {DIAGNOSTIC}": lambda: [
            dual_storage.generate_dataset_presigned_url(key, EXPIRES) for key in keys
        ],
        "boto3 generate_presigned_url": lambda: [
            client.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": key, **attachment(key)},
                ExpiresIn=EXPIRES,
            )
            for key in keys
        ],
        "django-storages url()": lambda: [
            plain_storage.url(key, parameters=attachment(key)) for key in keys
        ],
    }


def run(target: Target, *, repeat: int) -> list[Result]:
    """Time each contender over the page, warmed up, in a rotated order each round."""
    keys = [f"datasets/{i:05d}.zip" for i in range(PAGE)]
    signers = _signers(target, keys)
    results = {name: Result(OPERATION, 0, name, per_run=PAGE) for name in signers}
    for name, sign in signers.items():  # warm-up: clients, models, probes
        try:
            sign()
        except Exception as exc:
            results[name].note = f"error: {type(exc).__name__}: {exc}"[:120]
    names = [name for name in signers if results[name].note is None]
    for round_number in range(max(3, repeat)):
        shift = round_number % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            signers[name]()
            results[name].seconds.append(time.perf_counter() - start)
    return list(results.values())
