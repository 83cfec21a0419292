"""A progress bar for long transfers: drawn only when the output is a terminal.

Uploads hear the bytes sent through ``transfer.reporting_progress`` (s3transfer's
callback); downloads poll the size of the temporary file that ``Store.download`` writes
beside the destination (:func:`watch_partial_download`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from django.core.management.base import OutputWrapper

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(size: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in _UNITS[:-1]:
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {_UNITS[-1]}"


class ProgressBar:
    """``label [#######.......] 45.0%  12.3 MiB/27.0 MiB  5.1 MiB/s``, redrawn in place.

    Disabled (every method a no-op) unless enabled; safe to update from any thread.
    """

    def __init__(
        self,
        out: OutputWrapper,
        label: str,
        total: int | None,
        *,
        enabled: bool,
        width: int = 30,
        min_interval: float = 0.1,
    ) -> None:
        self.out, self.label, self.total, self.enabled = out, label, total, enabled
        self.width, self.min_interval = width, min_interval
        self.done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._drawn_at = 0.0

    @classmethod
    def for_terminal(
        cls, out: OutputWrapper, label: str, total: int | None, *, quiet: bool = False
    ) -> ProgressBar:
        """A bar that draws only if ``out`` is a TTY and output is not ``quiet``."""
        return cls(out, label, total, enabled=not quiet and out.isatty())

    def advance(self, count: int) -> None:
        if self.enabled and count:
            with self._lock:
                self.done += count
                self._draw()

    def update_to(self, done: int) -> None:
        if self.enabled:
            with self._lock:
                self.done = done
                self._draw()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            with self._lock:
                self._draw(force=True)
                self.out.write("", ending="\n")
                self.enabled = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.finish()

    def render(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = f"{human_size(self.done / elapsed)}/s"
        if not self.total:
            return f"{self.label}  {human_size(self.done)}  {rate}"
        fraction = min(self.done / self.total, 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        sizes = f"{human_size(self.done)}/{human_size(self.total)}"
        return f"{self.label} [{bar}] {fraction:6.1%}  {sizes}  {rate}"

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._drawn_at >= self.min_interval:
            self._drawn_at = now
            self.out.write(f"\r{self.render()}\x1b[K", ending="")
            self.out.flush()


@contextmanager
def watch_partial_download(
    dest: Path, bar: ProgressBar, *, interval: float = 0.2
) -> Iterator[None]:
    """Advance ``bar`` while ``Store.download`` fills its ``.<name>.*.part`` temp file."""
    if not bar.enabled:
        yield
        return
    prefix = f".{dest.name[:200]}."  # as in dual_storage_app._streams.atomic_destination
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval):
            size = _partial_size(dest.parent, prefix)
            if size is not None:
                bar.update_to(size)

    thread = threading.Thread(target=poll, name="dualstorage-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _partial_size(directory: Path, prefix: str) -> int | None:
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.name.endswith(".part"):
                    return entry.stat().st_size
    except OSError:
        return None
    return None
