"""Progress of a run: a tqdm bar on a terminal, plain lines (rate, ETA) in a log."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

__all__ = ["Progress"]

LINE_EVERY = 10.0
"""Seconds between plain progress lines (the first and last batch always print one)."""


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Counts explained examples out of ``total``; ``enabled=None`` decides by the stream."""

    def __init__(
        self, total: int, done: int, enabled: bool | None, stream: IO[str] | None = None
    ) -> None:
        self.total = total
        self.done = done
        self.start_done = done
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled is not False
        self.bar: Any = None
        self.started = time.perf_counter()
        self.last_line = -LINE_EVERY
        if self.enabled and self.stream.isatty():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=total, initial=done, unit="ex", file=self.stream, desc="integrad run"
                )

    def __enter__(self) -> Progress:
        return self

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last_line >= LINE_EVERY or self.done >= self.total:
            self.last_line = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    @property
    def rate(self) -> float:
        """Examples per second since this process started on the run."""
        elapsed = time.perf_counter() - self.started
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        share = 100.0 * self.done / self.total if self.total else 100.0
        left = _clock(eta) if eta == eta else "?"
        return (
            f"integrad run: {self.done}/{self.total} examples ({share:.0f}%), "
            f"{rate:.3g} examples/s, ETA {left}"
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.close()
