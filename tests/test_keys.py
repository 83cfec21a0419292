"""Object key validation: safe keys pass through unchanged, unsafe ones are refused."""

from __future__ import annotations

import unicodedata

import pytest

from dual_storage_app.exceptions import DualStorageError, InvalidKey
from dual_storage_app.keys import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, validate_key

KEY_1024_BYTES = "a/" * 511 + "ab"
KEY_1025_BYTES = "a/" * 511 + "abc"
SEGMENT_255_ASCII = "s" * 255
SEGMENT_255_MULTIBYTE = "é" * 127 + "a"  # 254 + 1 bytes
SEGMENT_256_ASCII = "s" * 256
SEGMENT_256_MULTIBYTE = "é" * 128  # 2 bytes each
# 1,025 bytes made of valid multibyte segments (each 201 bytes, under the segment limit).
KEY_1025_MULTIBYTE = "/".join(["é" * 100 + "x"] * 5) + "/" + "y" * 15


def test_length_fixtures_have_the_intended_sizes() -> None:
    assert len(KEY_1024_BYTES.encode()) == MAX_KEY_BYTES == 1024
    assert len(KEY_1025_BYTES.encode()) == 1025
    assert len(KEY_1025_MULTIBYTE.encode()) == 1025
    assert len(SEGMENT_255_ASCII.encode()) == len(SEGMENT_255_MULTIBYTE.encode()) == 255
    assert MAX_SEGMENT_BYTES == 255
    assert len(SEGMENT_256_ASCII.encode()) == len(SEGMENT_256_MULTIBYTE.encode()) == 256


@pytest.mark.parametrize(
    "key",
    [
        "resnet50.pth",
        "jobs/123/checkpoint_epoch_10.pth",
        "datasets/abc-123.zip",
        "with space/file name.bin",
        "a+b=c.txt",
        "100%/done.txt",
        "issue#42/notes.md",
        "what?/really.json",
        "données/é.zip",
        "日本語/データ.csv",
        "...json",
        ".hidden",
        "a/.b/..c",
        KEY_1024_BYTES,
        SEGMENT_255_ASCII,
        f"prefix/{SEGMENT_255_MULTIBYTE}/suffix",
    ],
)
def test_valid_key_is_returned_unchanged(key: str) -> None:
    assert validate_key(key) is key
    assert validate_key(key, store="internal", bucket="model-weights") is key


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "the key is empty"),
        ("/abs/path.bin", "starts with '/'"),
        ("/", "starts with '/'"),
        ("a//b", "empty segment"),
        ("a/b/", "empty segment"),
        ("../../etc/passwd", "'..' segment"),
        ("a/../b", "'..' segment"),
        ("..", "'..' segment"),
        ("./a", "'.' segment"),
        ("a/./b", "'.' segment"),
        ("a\x00b", "control character (U+0000)"),
        ("a\nb", "control character (U+000A)"),
        ("a\x7fb", "control character (U+007F)"),
        ("a\tb", "control character (U+0009)"),
        ("zero\u200bwidth", "invisible format character (U+200B)"),
        ("evil\u202egnp.exe", "invisible format character (U+202E)"),
        ("a\\b", "backslash"),
        ("..\\..\\windows", "backslash"),
        (unicodedata.normalize("NFD", "é"), "not NFC-normalised"),
        (unicodedata.normalize("NFD", "données/é.zip"), "not NFC-normalised"),
        (KEY_1025_BYTES, "1025 bytes long, the limit is 1024"),
        (KEY_1025_MULTIBYTE, "1025 bytes long, the limit is 1024"),
        (SEGMENT_256_ASCII, "segment is longer than 255 bytes"),
        (SEGMENT_256_MULTIBYTE, "segment is longer than 255 bytes"),
        (f"ok/{SEGMENT_256_MULTIBYTE}/ok", "segment is longer than 255 bytes"),
    ],
)
def test_unsafe_key_is_refused_with_a_message_naming_the_problem(key: str, problem: str) -> None:
    with pytest.raises(InvalidKey) as excinfo:
        validate_key(key)
    message = str(excinfo.value)
    assert problem in message
    assert message.startswith("Invalid object key ")
    # Refused, never rewritten: the error carries the key exactly as given.
    assert excinfo.value.key == key


@pytest.mark.parametrize("key", [None, 42, b"bytes-key", ["a"], 1.5])
def test_non_str_key_is_refused(key: object) -> None:
    with pytest.raises(InvalidKey, match=f"a key must be a str, not {type(key).__name__}"):
        validate_key(key)


def test_invalid_key_is_a_value_error_and_a_dual_storage_error() -> None:
    with pytest.raises(ValueError) as excinfo:
        validate_key("../x")
    assert isinstance(excinfo.value, InvalidKey)
    assert isinstance(excinfo.value, DualStorageError)


def test_refusal_names_store_and_bucket_when_given() -> None:
    with pytest.raises(InvalidKey) as excinfo:
        validate_key("a//b", store="external", bucket="training-datasets")
    error = excinfo.value
    assert "for the external store" in str(error)
    assert "'training-datasets'" in str(error)
    assert "'a//b'" in str(error)
    assert (error.store, error.bucket, error.key) == ("external", "training-datasets", "a//b")


def test_non_str_refusal_carries_no_key() -> None:
    with pytest.raises(InvalidKey) as excinfo:
        validate_key(123, store="internal", bucket="model-weights")
    assert excinfo.value.key is None
    assert excinfo.value.store == "internal"


def test_nfc_form_of_a_refused_nfd_key_is_accepted() -> None:
    nfd = unicodedata.normalize("NFD", "données/é.zip")
    nfc = unicodedata.normalize("NFC", nfd)
    assert nfd != nfc
    with pytest.raises(InvalidKey):
        validate_key(nfd)
    assert validate_key(nfc) == "données/é.zip"
