"""Keys that belong to a dataset without being a row's own key.

A folder dataset's row points at its manifest; its files live under the folder's prefix,
listed in ``DatasetFile`` rows. A browser upload in progress has stored parts or files
that no row points at yet. Commands that look for objects without a row (``verify
--orphans``, ``adopt``) must leave all of these alone: they are neither orphans nor
datasets of their own.
"""

from __future__ import annotations

from .kinds import ArtifactKind
from .manifests import folder_prefix
from .models import Dataset
from .uploads.session import UploadSession


class OwnedKeys:
    """Membership test: is a key a folder dataset's file or an upload's in progress?"""

    def __init__(self, prefixes: set[str], keys: set[str]) -> None:
        self.prefixes = prefixes
        self.keys = keys

    @classmethod
    def load(cls, kind: ArtifactKind) -> OwnedKeys:
        """What belongs to folder datasets and unfinished browser uploads of ``kind``
        (only datasets have either)."""
        if kind != "datasets":
            return cls(set(), set())
        manifests = Dataset.objects.filter(file_count__gt=0).values_list("file", flat=True)
        prefixes = {folder_prefix(str(key)) for key in manifests}
        unfinished = UploadSession.objects.exclude(
            state__in=(UploadSession.State.ABORTED, UploadSession.State.EXPIRED)
        ).filter(dataset__isnull=True)
        keys: set[str] = set()
        for kind_of_upload, key in unfinished.values_list("kind", "key"):
            if kind_of_upload == UploadSession.Kind.FOLDER:
                prefixes.add(f"{key}/")
            else:
                keys.add(str(key))
        return cls(prefixes, keys)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self.keys:
            return True
        slash = key.find("/")
        while slash != -1:
            if key[: slash + 1] in self.prefixes:
                return True
            slash = key.find("/", slash + 1)
        return False

    def reason(self, key: str) -> str | None:
        """Why ``key`` is not an object of its own, or ``None``."""
        if key not in self:
            return None
        if key in self.keys:
            return "a browser upload in progress"
        return "a file of a folder dataset (or of a folder upload in progress)"
