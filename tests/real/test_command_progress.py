"""The transfer commands' progress bar (only on a terminal, fed by the transfers) and
their sizes (the admin's formatter), on the real servers.
"""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from tqdm import tqdm

from dual_storage_app.client import DualStorageClient
from dual_storage_app.models import ModelWeight
from dual_storage_app.store import facade
from tests.helpers import MakeFile, run

pytestmark = [pytest.mark.real_s3, pytest.mark.django_db(transaction=True)]


class Terminal(StringIO):
    """A stdout that says it is a TTY, as an interactive shell's would."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(
    real_storage: DualStorageClient, make_file: MakeFile, tmp_path: Path
) -> None:
    source = make_file("bar.pth", 2 * 1024 * 1024)
    quiet = run("dualstorage_upload", "weights", str(source))
    assert "\r" not in quiet and "%" not in quiet
    row = ModelWeight.objects.get()
    quiet = run("dualstorage_download", "weights", "--id", str(row.pk), str(tmp_path / "a"))
    assert "\r" not in quiet and "%" not in quiet

    shown = run("dualstorage_upload", "weights", str(source), stdout=Terminal())
    assert "\rUploading bar.pth:" in shown and "100%" in shown and "2.00M/2.00M" in shown
    download = ["dualstorage_download", "weights", "--id", str(row.pk), str(tmp_path / "b")]
    shown = run(*download, stdout=Terminal())
    assert "\rDownloading b:" in shown and "100%" in shown and "2.00M/2.00M" in shown
    assert (tmp_path / "b").read_bytes() == source.read_bytes()
    # --json output stays a clean document even on a terminal.
    out = Terminal()
    call_command("dualstorage_upload", "weights", str(source), "--json", stdout=out)
    assert json.loads(out.getvalue())["size"] == source.stat().st_size


def _counting_bar_updates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every increment a progress bar is fed, in order."""
    heard: list[int] = []
    real_update = tqdm.update

    def update(bar: tqdm[None], count: float | None = 1) -> bool | None:
        heard.append(int(count or 0))
        return real_update(bar, count)

    monkeypatch.setattr(tqdm, "update", update)
    return heard


def test_progress_bar_upload_still_goes_by_path(
    real_storage: DualStorageClient, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar hears s3transfer's callback; the file is not wrapped into a stream (which
    would buffer parts in memory)."""

    def no_stream_upload(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file upload took the buffered stream path")

    monkeypatch.setattr(facade, "upload_stream", no_stream_upload)
    heard = _counting_bar_updates(monkeypatch)
    source = make_file("big.pth", 40 * 1024 * 1024)
    shown = run("dualstorage_upload", "weights", str(source), stdout=Terminal())
    assert re.findall(r"(\d+)%", shown)[-1] == "100"
    assert sum(heard) == source.stat().st_size
    assert len(heard) > 3  # it moved as the parts were sent, not in one jump
    assert ModelWeight.objects.get().size == source.stat().st_size


def test_progress_bar_download_hears_the_bytes_written(
    real_storage: DualStorageClient,
    make_file: MakeFile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A download's bar is fed by the ranged GETs as they write (not by polling the
    temporary file), so it never runs ahead of what is on disk."""
    source = make_file("big.pth", 40 * 1024 * 1024)
    run("dualstorage_upload", "weights", str(source))
    row = ModelWeight.objects.get()
    heard = _counting_bar_updates(monkeypatch)
    shown = run(
        "dualstorage_download",
        "weights",
        "--id",
        str(row.pk),
        str(tmp_path / "c"),
        stdout=Terminal(),
    )
    assert re.findall(r"(\d+)%", shown)[-1] == "100"
    assert sum(heard) == source.stat().st_size
    assert len(heard) > 3
    assert (tmp_path / "c").read_bytes() == source.read_bytes()


def test_sizes_use_the_admins_formatter() -> None:
    """Commands and the admin format one size the same way (Django's filesizeformat)."""
    from django.template.defaultfilters import filesizeformat

    from dual_storage_app.management._common import format_size, size_text

    for size in (0, 1536, 20 * 1024 * 1024, 5 * 1024**4):
        assert format_size(size) == str(filesizeformat(size)).replace("\xa0", " ")
    assert (format_size(0), format_size(1536), format_size(5 * 1024**4)) == (
        "0 bytes",
        "1.5 KB",
        "5.0 TB",
    )
    assert size_text(3000) == "2.9 KB (3000 bytes)"
