"""boto3 clients for a store: one shared session, built under a lock, secrets hidden."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from ..config.stores import StoreConfig
from .redaction import sensitive_variables

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SESSION_LOCK = threading.Lock()


@functools.cache
def _shared_session() -> boto3.session.Session:
    """One credential-less session, so botocore loads the S3 model once per process."""
    return boto3.session.Session()


# Django's error reports print frame locals; this frame (and boto3's below it) holds the
# secret key.
@sensitive_variables()
def make_client(config: StoreConfig, endpoint_url: str, *, path_style: bool = False) -> S3Client:
    """A thread-safe S3 client for ``config`` talking to ``endpoint_url``."""
    botocore_config = config.provider.botocore_config(max_pool_connections=32)
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
