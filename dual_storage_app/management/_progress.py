"""Progress bars for long transfers: ``tqdm``, drawn only when the output is a terminal.

The bar is fed by the transfer itself through
:func:`~dual_storage_app.store.transfer.reporting_progress`: uploads report the bytes
s3transfer sends, downloads the bytes each ranged GET writes, so the bar never runs ahead
of the real progress.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import OutputWrapper
from tqdm import tqdm

from dual_storage_app.store.transfer import reporting_progress


class _Terminal:
    """``OutputWrapper`` as the plain file tqdm writes to (no line ending added)."""

    def __init__(self, out: OutputWrapper) -> None:
        self._out = out

    def write(self, text: str) -> None:
        self._out.write(text, ending="")

    def flush(self) -> None:
        self._out.flush()


@contextmanager
def transfer_progress(
    out: OutputWrapper, label: str, total: int | None, *, quiet: bool = False
) -> Iterator[tqdm[None]]:
    """A byte bar on ``out`` while the block runs, fed by the transfers the block starts
    in this thread; disabled (nothing is written) unless ``out`` is a TTY and not
    ``quiet``."""
    bar: tqdm[None] = tqdm(  # type: ignore[assignment]
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=_Terminal(out),
        disable=quiet or not out.isatty(),
        mininterval=0.1,
        dynamic_ncols=True,
    )
    lock = threading.Lock()  # callbacks arrive from the transfer's worker threads

    def advance(count: int) -> None:
        with lock:
            bar.update(count)

    with bar, reporting_progress(advance):
        yield bar
