"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Transfers smaller than this finish before a bar would help.
MIN_TOTAL = 32 << 20
_REDRAW_SECONDS = 0.1


class ProgressBar:
    """Call the instance with a byte count as work is done; :meth:`close` clears the line."""

    def __init__(
        self, label: str, total: int | None, *, stream: TextIO | None = None, unit: str = "bytes"
    ) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.enabled = self.stream.isatty() and (
            total is None or total >= MIN_TOTAL or unit != "bytes"
        )
        self._start = time.monotonic()
        self._drawn = 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._drawn >= _REDRAW_SECONDS:
            self._drawn = now
            self._draw(now)

    def _fmt(self, n: float) -> str:
        from casstore.config import human_bytes

        return human_bytes(n) if self.unit == "bytes" else f"{n:.0f} {self.unit}"

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-9)
        if self.total:
            pct = min(100.0, 100.0 * self.done / self.total)
            width = 24
            fill = int(width * pct / 100)
            bar = f"[{'#' * fill}{'.' * (width - fill)}] {pct:3.0f}% "
            amount = f"{self._fmt(self.done)} / {self._fmt(self.total)}"
        else:
            bar, amount = "", self._fmt(self.done)
        line = f"{self.label} {bar}{amount}  {self._fmt(rate)}/s"
        self.stream.write("\r" + line[:120] + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
