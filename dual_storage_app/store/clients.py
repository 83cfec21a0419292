"""boto3 clients for a store: one shared session, built under a lock, secrets hidden."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from ..config.stores import StoreConfig
from .redaction import sensitive_variables
from .transfer import DOWNLOAD_THREADS, FOLDER_FILES_AT_ONCE, transfer_config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SESSION_LOCK = threading.Lock()
#: Connections a client keeps to its store: no fewer than the requests one transfer sends
#: at once (a folder's files, a multipart upload's parts, a download's ranges), so none
#: waits for one, and urllib3 never opens extra connections only to drop them.
POOL_CONNECTIONS = max(
    FOLDER_FILES_AT_ONCE, transfer_config().max_request_concurrency, DOWNLOAD_THREADS
)


@functools.cache
def _shared_session() -> boto3.session.Session:
    """One credential-less session, so botocore loads the S3 model once per process."""
    return boto3.session.Session()


# Django's error reports print frame locals; this frame (and boto3's below it) holds the
# secret key.
@sensitive_variables()
def make_client(config: StoreConfig, endpoint_url: str, *, path_style: bool = False) -> S3Client:
    """A thread-safe S3 client for ``config`` talking to ``endpoint_url``."""
    botocore_config = config.provider.botocore_config(max_pool_connections=POOL_CONNECTIONS)
    if path_style:  # a custom public host serves /bucket/key
        botocore_config = botocore_config.merge(Config(s3={"addressing_style": "path"}))
    with _SESSION_LOCK:  # boto3 sessions are not thread-safe; clients are
        return _shared_session().client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            region_name=config.region,
            config=botocore_config,
        )


@functools.cache
def _resource_class() -> type[Any]:
    """boto3's S3 ServiceResource class, built once from a throw-away client (explicit dummy
    credentials: no provider chain, no request)."""
    with _SESSION_LOCK:
        probe = _shared_session().resource(
            "s3",
            region_name="us-east-1",
            aws_access_key_id="unused",
            aws_secret_access_key="unused",  # noqa: S106 - never sent
        )
    return type(probe)


def make_resource(config: StoreConfig, client: S3Client) -> Any:
    """A boto3 S3 resource whose requests go through ``client`` (resources are not
    thread-safe: one per thread, all sharing the thread-safe client). boto3's
    ``ServiceResource(client=...)`` is the guard's first side; a boto3 that ignored it gets
    a resource with its own client for the same store."""
    resource = _resource_class()(client=client)
    if resource.meta.client is client:
        return resource
    return _shared_session().resource(  # pragma: no cover - boto3 without client=
        "s3",
        endpoint_url=config.endpoint_url,
        aws_access_key_id=config.access_key,
        aws_secret_access_key=config.secret_key,
        region_name=config.region,
        config=config.provider.botocore_config(max_pool_connections=POOL_CONNECTIONS),
    )
