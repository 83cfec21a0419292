"""HTTP helpers for tests: plain GETs to loopback servers (presigned links, the S3 API)."""

from __future__ import annotations

import urllib.error
import urllib.request


def fetch(url: str) -> bytes:
    """The body of a GET of ``url`` (loopback only)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def refusal_status(url: str) -> int:
    """The HTTP error status a GET of ``url`` gets (fails the test if it succeeds)."""
    try:
        with urllib.request.urlopen(url, timeout=10):
            pass
    except urllib.error.HTTPError as error:
        with error:
            return error.code
    raise AssertionError(f"{url} was served, but should have been refused")
