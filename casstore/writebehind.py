"""Consuming pieces on a second thread, so decoding overlaps with hashing and the disk."""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import Queue
from types import TracebackType


class WriteBehind:
    """Hand pieces to ``consume`` on a background thread; at most ``depth`` wait.

    An error in ``consume`` is raised by the next :meth:`put` or on exit; later
    pieces are dropped. Leaving the ``with`` block waits for every piece.
    """

    def __init__(self, consume: Callable[[bytes], None], depth: int = 4) -> None:
        self._consume = consume
        self._queue: Queue[bytes | None] = Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="casstore-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._consume(piece)
                except BaseException as exc:  # raised again on the caller's thread
                    self._error = exc

    def put(self, piece: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(piece)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc is None and self._error is not None:
            raise self._error
