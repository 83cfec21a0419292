"""The stream-through download's answer: only the bytes the row recorded, HEAD, and one
``Range`` at a time so a large download can resume.

Before the first byte the object must still be the row's: its SHA-256 tag (where the
provider has tags) equals the row's, and the GET carries ``If-Match`` on the row's ETag,
so the store itself refuses an object replaced out of band. A whole-object answer is
also hashed as it streams, with the last chunk held back until the hash is checked: on a
mismatch the response ends short of its ``Content-Length`` (the client sees a failed
download, never a complete wrong body) and an error naming bucket and key is logged. A
range answer (``206``) rests on ``If-Match``; ``If-Range`` with another ETag gets the
whole object.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header

from .exceptions import IntegrityError
from .store.streaming import ObjectStream
from .store.transfer import DEFAULT_CONTENT_TYPE

if TYPE_CHECKING:
    from .models import Artifact

logger = logging.getLogger(__name__)

_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
UNSATISFIABLE = (-1, -1)


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``header`` asks for, first and last byte inclusive; ``None`` to
    send the whole object (no header, several ranges, or a syntax we do not serve, as RFC
    9110 allows); :data:`UNSATISFIABLE` for a range past the end."""
    match = _SINGLE_RANGE.match((header or "").replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return UNSATISFIABLE if start >= size else None
    return start, end


def verified_chunks(stream: ObjectStream, artifact: Artifact) -> Iterator[bytes]:
    """The whole object's chunks, hashed as they pass; the last one is sent only once
    size and SHA-256 equal the row's, else the answer is cut short."""
    digest, size, held = hashlib.sha256(), 0, b""
    started = False
    try:
        for chunk in stream:
            if started:
                yield held
            digest.update(chunk)
            size += len(chunk)
            held, started = chunk, True
        if (size, digest.hexdigest()) != (artifact.size, artifact.sha256):
            logger.error(
                "Download of bucket %r key %r cut short: the stored bytes (%d, SHA-256 %s) "
                "are not the row's (%d, SHA-256 %s)",
                artifact.bucket,
                artifact.key,
                size,
                digest.hexdigest(),
                artifact.size,
                artifact.sha256,
            )
            raise _not_the_rows(artifact, "its bytes no longer match; the download was cut short")
        if started:
            yield held
    finally:
        stream.close()


def _not_the_rows(artifact: Artifact, why: str) -> IntegrityError:
    """The refusal of an object that no longer holds the row's bytes."""
    return IntegrityError(
        f"The object at key {artifact.key!r} is not the row's: {why}.",
        store=artifact.store_name,
        bucket=artifact.bucket,
        key=artifact.key,
    )


def _for_asgi(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """The same chunks for ASGI: each blocking read runs in a worker thread, so the
    event loop never waits and Django never buffers the whole body."""
    iterator = iter(chunks)

    def next_chunk() -> bytes | None:
        return next(iterator, None)

    read = sync_to_async(next_chunk, thread_sensitive=False)

    async def generate() -> AsyncIterator[bytes]:
        while (chunk := await read()) is not None:
            yield chunk

    return generate()


def check_recorded_sha256(artifact: Artifact, recorded: str | None) -> None:
    """Refuse, before the first byte, an object whose SHA-256 tag is not the row's."""
    if recorded is not None and recorded != artifact.sha256:
        logger.error(
            "Download of bucket %r key %r refused: its SHA-256 tag %s is not the row's %s",
            artifact.bucket,
            artifact.key,
            recorded,
            artifact.sha256,
        )
        raise _not_the_rows(artifact, "it was replaced: its recorded SHA-256 is not the row's")


def artifact_response(request: HttpRequest, artifact: Artifact) -> HttpResponseBase:
    """The answer to a GET or HEAD of ``artifact``'s bytes (see the module docstring);
    store failures and refusals raise the app's exceptions before anything is sent."""
    store, bucket = artifact.location()
    check_recorded_sha256(artifact, store.recorded_sha256(bucket, artifact.key))
    etag = f'"{artifact.etag}"' if artifact.etag else None
    if_range = request.headers.get("If-Range")
    wanted = None if if_range and if_range != etag else request.headers.get("Range")
    byte_range = requested_range(wanted, artifact.size)
    if byte_range == UNSATISFIABLE:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{artifact.size}"
        return refused
    response: HttpResponseBase
    if request.method == "HEAD":
        info = store.head(bucket, artifact.key)
        if artifact.etag and info.etag != artifact.etag:
            raise _not_the_rows(artifact, "it was replaced: its ETag is not the row's")
        response = HttpResponse(content_type=artifact.content_type or DEFAULT_CONTENT_TYPE)
        length = artifact.size if byte_range is None else byte_range[1] - byte_range[0] + 1
    else:
        stream = store.open_stream(
            bucket, artifact.key, byte_range=byte_range, if_match=artifact.etag or None
        )
        sync_chunks = verified_chunks(stream, artifact) if byte_range is None else _closing(stream)
        # Under ASGI, Django would collect a synchronous iterator into memory first.
        chunks: Iterable[bytes] | AsyncIterator[bytes] = (
            _for_asgi(sync_chunks) if isinstance(request, ASGIRequest) else sync_chunks
        )
        content_type = stream.content_type or artifact.content_type or DEFAULT_CONTENT_TYPE
        response = StreamingHttpResponse(chunks, content_type=content_type)
        length = stream.size
    if byte_range is not None:
        response.status_code = 206
        response["Content-Range"] = f"bytes {byte_range[0]}-{byte_range[1]}/{artifact.size}"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=posixpath.basename(artifact.key) or "download"
    )
    if etag:
        response["ETag"] = etag
    response["X-Content-Type-Options"] = "nosniff"
    patch_cache_control(response, private=True)
    return response


def _closing(stream: ObjectStream) -> Iterator[bytes]:
    """A range's chunks; the GET is closed however the answer ends."""
    try:
        yield from stream
    finally:
        stream.close()
