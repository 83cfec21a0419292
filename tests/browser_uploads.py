"""A browser for the upload API's tests: JSON calls to the app as a signed-in user,
``PUT``s of parts and files to the URLs it signs, as a browser's script would."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import requests
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from dual_storage_app.client import DualStorageClient
from dual_storage_app.testing.server import LocalS3Server

PART = 5 * 1024 * 1024  # the smallest part S3 allows


def put(url: str, data: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    """The browser's ``PUT`` of a part to a signed URL."""
    return requests.put(url, data=data, headers=headers or {}, timeout=30)


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class Browser:
    """A signed-in user's browser: JSON calls to the app, ``PUT``s to the store."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def call(self, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        if body is None:
            response = self.client.get(url)
        else:
            response = self.client.post(url, json.dumps(body), content_type="application/json")
        return response.status_code, response.json()

    def start(self, data: bytes, name: str = "train.tar", **extra: Any) -> dict[str, Any]:
        status, session = self.call(
            reverse("dual_storage_app:upload-start"),
            {"name": name, "size": len(data), "type": "application/x-tar", **extra},
        )
        assert status in (200, 201), session
        return session

    def put_parts(
        self,
        session: dict[str, Any],
        data: bytes,
        numbers: list[int],
        chunks: dict[int, bytes] | None = None,
    ) -> list[int]:
        """Sign and send parts ``numbers`` of ``data`` (or the given ``chunks``); the
        store's status per part."""
        size = session["part_size"]
        chunks = chunks or {n: data[(n - 1) * size : n * size] for n in numbers}
        status, signed = self.call(
            session["urls"]["sign"],
            {"parts": [{"number": n, "sha256": b64sha(chunks[n])} for n in numbers]},
        )
        assert status == 200, signed
        return [
            requests.put(
                p["url"], data=chunks[p["number"]], headers=p["headers"], timeout=30
            ).status_code
            for p in signed["parts"]
        ]

    def send_all(self, data: bytes, **extra: Any) -> dict[str, Any]:
        session = self.start(data, **extra)
        assert (
            self.put_parts(session, data, list(range(1, session["part_count"] + 1)))
            == [200] * session["part_count"]
        )
        return session

    def complete(self, session: dict[str, Any], data: bytes | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {}
        if data is not None:
            size = session["part_size"]
            body["parts"] = [
                {"number": n, "sha256": b64sha(data[(n - 1) * size : n * size])}
                for n in range(1, session["part_count"] + 1)
            ]
        return self.call(session["urls"]["complete"], body)


def browser_of(django_user_model: Any, *, perms: tuple[str, ...] = ("add_dataset",)) -> Browser:
    user = django_user_model.objects.create_user(username=f"u-{uuid.uuid4().hex[:8]}")
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client = Client()
    client.force_login(user)
    return Browser(client)


def multipart_ids(servers: dict[str, LocalS3Server], bucket: str) -> set[str]:
    answer = servers["external"].client().list_multipart_uploads(Bucket=bucket)
    return {u["UploadId"] for u in answer.get("Uploads", [])}


def stored(direct: DualStorageClient, key: str) -> bytes | None:
    store, bucket = direct.locate("datasets")
    return store.get_bytes(bucket, key) if store.exists(bucket, key) else None
