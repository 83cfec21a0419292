"""The manifest of a folder dataset: what it lists, how it is written and read.

A folder dataset ``datasets/<id>/<name>`` is its files under ``datasets/<id>/<name>/``
and, beside them, ``datasets/<id>/<name>.manifest.json``: JSON naming every file's path
(relative to the folder), size and SHA-256, sorted by path. The manifest is the dataset's
own object (its row's key); it is read without Django, so a training worker with only
the client can fetch and verify a whole folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .exceptions import IntegrityError, InvalidKey
from .keys import validate_key

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "dual-storage-manifest/1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


def is_manifest(key: str) -> bool:
    return key.endswith(MANIFEST_SUFFIX)


def folder_prefix(manifest_key: str) -> str:
    """``datasets/<id>/<name>/`` for the manifest ``datasets/<id>/<name>.manifest.json``."""
    return manifest_key.removesuffix(MANIFEST_SUFFIX) + "/"


def manifest_bytes(name: str, files: list[ManifestEntry]) -> bytes:
    """The manifest of ``files``: JSON, one entry per file, sorted by path."""
    listed = sorted(files, key=lambda entry: entry.path)
    document = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "file_count": len(listed),
        "size": sum(entry.size for entry in listed),
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in listed],
    }
    return json.dumps(document, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


def read_manifest(data: bytes, key: str) -> list[ManifestEntry]:
    """The entries of a manifest, each checked (a path that could leave the folder, a
    size or hash that is not one, a path listed twice is an ``IntegrityError``)."""
    try:
        document: Any = json.loads(data)
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"its format is {document.get('format')!r}, not {MANIFEST_FORMAT!r}")
        entries = [
            ManifestEntry(str(f["path"]), int(f["size"]), str(f["sha256"]))
            for f in document["files"]
        ]
        seen: set[str] = set()
        for entry in entries:
            validate_key(entry.path)
            if entry.size < 0 or not _SHA256.match(entry.sha256) or entry.path in seen:
                raise ValueError(f"its entry for {entry.path!r} is not valid")
            seen.add(entry.path)
    except (ValueError, TypeError, KeyError, AttributeError, InvalidKey) as exc:
        raise IntegrityError(f"{key!r} is not a dataset manifest: {exc}.", key=key) from exc
    return entries
