"""Our Django paths as contenders: a model ``FileField`` save and the download command.

Both run in the bench process with Django configured by :mod:`bench.djangoenv` (a real
SQLite database, both stores on the bench's server), so their time includes what a
project pays: the row's INSERT in a transaction, the generated key, the SHA-256.
"""

from __future__ import annotations

import io
from pathlib import Path

from .contenders import OURS, Contender
from .djangoenv import configure
from .target import Target


class OursFileFieldSave(Contender):
    """``ModelWeight.file.save(name, File(f))`` inside ``transaction.atomic()``."""

    name = f"{OURS} FileField save"
    directions = ("upload",)

    def __init__(self, target: Target) -> None:
        configure(target)

    def upload(self, source: Path, key: str) -> None:
        from django.core.files import File
        from django.db import transaction

        from dual_storage_app.models import ModelWeight

        with source.open("rb") as handle, transaction.atomic():
            ModelWeight(name=key[:200]).file.save(source.name, File(handle))

    def cleanup(self) -> None:
        """Delete the rows (their objects go after the commit) to keep the disk free."""
        from django.db import transaction

        from dual_storage_app.models import ModelWeight

        with transaction.atomic():
            for weight in ModelWeight.objects.all():
                weight.delete()


class OursDownloadCommand(Contender):
    """``manage.py dualstorage_download weights --id N DEST`` (in-process ``call_command``):
    the row's SHA-256 is verified before DEST appears."""

    name = f"{OURS} download command"
    directions = ("download",)

    def __init__(self, target: Target) -> None:
        configure(target)
        self._row_id: int | None = None

    def prepare_download(self, source: Path, key: str) -> None:
        """The command downloads a row: save one for ``source``."""
        from django.core.files import File
        from django.db import transaction

        from dual_storage_app.models import ModelWeight

        with source.open("rb") as handle, transaction.atomic():
            row = ModelWeight(name="bench download source")
            row.file.save(source.name, File(handle))
        self._row_id = row.pk

    def download(self, key: str, dest: Path) -> None:
        from django.core.management import call_command

        assert self._row_id is not None, "prepare_download() first"
        call_command(
            "dualstorage_download",
            "weights",
            "--id",
            str(self._row_id),
            str(dest),
            stdout=io.StringIO(),  # its report is not the bench's output
        )
