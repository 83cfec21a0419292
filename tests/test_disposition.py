"""``store/disposition.py``: the Response* overrides every presigned link carries.
On the real server (what a browser is sent): ``tests/real/test_link_safety.py``."""

from __future__ import annotations

import pytest

from dual_storage_app.store.disposition import (
    content_disposition,
    is_executable,
    link_parameters,
)

CD, CT = "ResponseContentDisposition", "ResponseContentType"


def test_content_disposition_follows_rfc_6266() -> None:
    assert content_disposition("attachment", "a.csv") == 'attachment; filename="a.csv"'
    assert content_disposition("inline", "é.png") == (
        "inline; filename=\"_.png\"; filename*=UTF-8''%C3%A9.png"
    )
    # Quotes, backslashes, control characters and separators never reach the header raw.
    header = content_disposition("attachment", 'a"b\\c\r\nd;e.zip')
    assert header.startswith("attachment; filename=\"a_b_c__d;e.zip\"; filename*=UTF-8''")
    assert "\r" not in header and "\n" not in header
    assert header.endswith("a%22b%5Cc%0D%0Ad%3Be.zip")


@pytest.mark.parametrize(
    "key",
    ["d/evil.html", "d/evil.HTM", "d/evil.svg", "d/evil.xml", "d/evil.xhtml", "d/evil.js"],
)
def test_types_a_browser_would_run_are_never_inline(key: str) -> None:
    for extra, inline in (({}, False), ({}, True), ({CD: "inline"}, False)):
        parameters = link_parameters(key, extra, inline=inline)
        assert parameters[CD].startswith("attachment; filename=")
        assert parameters[CT] == "application/octet-stream"


def test_a_caller_cannot_ask_for_an_executable_type() -> None:
    parameters = link_parameters("d/data.bin", {CT: "text/html; charset=utf-8"}, inline=False)
    assert parameters[CT] == "application/octet-stream"
    assert parameters[CD] == 'attachment; filename="data.bin"'


def test_inline_is_granted_to_safe_types_and_pins_their_type() -> None:
    assert link_parameters("d/p.png", None, inline=True) == {
        CD: 'inline; filename="p.png"',
        CT: "image/png",
    }
    # A caller's own inline works the same way; a caller's type cannot widen it.
    assert link_parameters("d/p.png", {CD: "inline", CT: "text/html"}, inline=False)[CT] == (
        "image/png"
    )


def test_plain_downloads_keep_the_stored_type_and_other_overrides() -> None:
    parameters = link_parameters("d/coco.zip", {"ResponseCacheControl": "no-cache"}, inline=False)
    assert parameters == {"ResponseCacheControl": "no-cache", CD: 'attachment; filename="coco.zip"'}
    # A caller's own attachment value (another download name) is kept.
    named = link_parameters("d/coco.zip", {CD: 'attachment; filename="x.zip"'}, inline=False)
    assert named[CD] == 'attachment; filename="x.zip"'


def test_executable_types() -> None:
    executable = (
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "multipart/x-mixed-replace",
        "TEXT/HTML; charset=utf-8",
    )
    assert all(is_executable(kind) for kind in executable)
    safe = (
        "application/zip",
        "image/png",
        "application/octet-stream",
        "text/plain",
        "application/json",
        "text/csv",
    )
    assert not any(is_executable(kind) for kind in safe)
