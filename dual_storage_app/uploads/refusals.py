"""What browsers send, checked: the refusal every upload view answers with, and the
checks that file and folder uploads share (numbers, text, part lists, session state,
the one place uploads may go)."""

from __future__ import annotations

from typing import Any, Protocol

from ..client import dual_storage
from ..exceptions import InvalidArgument
from ..store import Store
from ..store.multipart import sha256_base64
from .session import UploadSession

LISTED_PROBLEMS = 10  # problems named in one refusal


class UploadRefused(Exception):
    """The request cannot be honoured; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class HasParts(Protocol):
    """A file upload or one file of a folder: it has numbered parts."""

    part_count: int


def refusal(problems: list[str]) -> UploadRefused:
    """The 409 answer to a completion whose stored parts or files are not the file's."""
    shown = "; ".join(problems[:LISTED_PROBLEMS])
    more = len(problems) - LISTED_PROBLEMS
    return UploadRefused(
        f"The upload is not complete: {shown}{f' (and {more} more)' if more > 0 else ''}.",
        status=409,
    )


def datasets_location() -> tuple[Store, str]:
    """The external store and its datasets bucket: the only place browsers write."""
    store, bucket = dual_storage.locate("datasets")
    if store.name != "external" or store.config.public_endpoint_url is None:
        raise UploadRefused("Browser uploads go only to the external store.", status=403)
    return store, bucket


def whole_number(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UploadRefused(f"{field} must be a whole number, not {value!r}.")
    return value


def text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise UploadRefused(f"{field} must be text of at most {limit} characters.")
    return value


def require_active(session: UploadSession) -> None:
    """Refuse work on a session that is finished, cancelled or expired."""
    if session.state != UploadSession.State.ACTIVE:
        raise UploadRefused(f"This upload is {session.get_state_display()}.", status=409)
    if session.is_expired:
        raise UploadRefused(
            "This upload expired; start it again (the cleanup command aborts it).", status=410
        )


def part_checksums(upload: HasParts, entries: Any) -> dict[int, str]:
    """``{number: sha256}`` from ``[{"number": n, "sha256": "..."}]``, each checked."""
    if not isinstance(entries, list):
        raise UploadRefused('parts must be a list of {"number": n, "sha256": base64}.')
    checked: dict[int, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise UploadRefused('Each part must be {"number": n, "sha256": base64}.')
        number = whole_number(entry.get("number"), "number")
        if not 1 <= number <= upload.part_count:
            raise UploadRefused(
                f"Part {number} does not exist: this upload has parts 1 to {upload.part_count}."
            )
        try:
            checked[number] = sha256_base64(
                text(entry.get("sha256"), f"sha256 of part {number}", 64)
            )
        except InvalidArgument as exc:
            raise UploadRefused(f"Part {number}: {exc}") from exc
    return checked
