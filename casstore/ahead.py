"""Tasks run on a few threads ahead of the one that consumes their results, in order.

Reading a snapshot's files (decoding blocks, re-hashing) overlaps with writing
them out this way; how far ahead is bounded, so memory is too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def ahead(
    tasks: Iterable[Callable[[], T]], *, workers: int = 2, depth: int = 8
) -> Iterator[Iterator[T]]:
    """The result of each task, in order, computed on ``workers`` threads, at most
    ``depth`` tasks ahead of the consumer. An error is raised where its task's
    result would have been.

    A context: leaving it cancels what has not started and joins the threads, never
    left to the garbage collector (a collection inside threading's own
    bookkeeping can deadlock on the join)."""
    results = _run(tasks, workers, depth)
    try:
        yield results
    finally:
        results.close()


def _run(tasks: Iterable[Callable[[], T]], workers: int, depth: int) -> Generator[T, None, None]:
    with ThreadPoolExecutor(workers, thread_name_prefix="casstore-read") as pool:
        pending: deque[Future[T]] = deque()
        try:
            for task in tasks:
                pending.append(pool.submit(task))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for waiting in pending:  # the consumer stopped (an error): run no more
                waiting.cancel()
