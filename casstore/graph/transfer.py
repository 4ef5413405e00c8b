"""Copying closures between stores (``cas push`` / ``cas pull``).

Only what the destination lacks is sent; every object is re-hashed on the way
(a wrong byte aborts before the object is published). Plain objects go first,
concurrently; records go last, each after everything it references, so an
interrupted transfer never leaves a record whose references are missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casstore.errors import IntegrityError, RefExists
from casstore.format.packindex import MAX_PACKED_SIZE
from casstore.graph.closure import walk
from casstore.store.refs import set_ref, target

if TYPE_CHECKING:
    from casstore.store.batch import Batch
    from casstore.store.objects import Store

#: Objects copied at once; each is one or a few requests on S3.
DEFAULT_CONCURRENCY = 16


@dataclass
class TransferResult:
    roots: list[str]
    copied: int = 0
    copied_bytes: int = 0
    present: int = 0
    copied_digests: list[str] = field(default_factory=list)
    #: Refs set (or already so) at the destination.
    refs: dict[str, str] = field(default_factory=dict)
    #: Refs left alone at the destination because they name another object there.
    conflicts: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.copied + self.present


def copy_object(src: Store, dst: Batch, digest: str, *, pack: bool = True) -> int:
    """Copy one object, verified; returns its size. Small objects are packed."""
    with src.open(digest) as reader:
        # The reader raises at its end if the content is wrong, before dst publishes.
        if pack and reader.size <= MAX_PACKED_SIZE:
            copied = dst.put_bytes(reader.read(), known_absent=True)
        elif reader.chunks is not None:
            # Chunked at the source: chunked the same way here, sharing the chunks copied.
            copied = dst.put_chunked(reader)
        else:
            copied = dst.store.put_stream(reader, check_present=False).digest
        size = reader.size
    if copied != digest:  # pragma: no cover - the verifying reader guarantees this
        raise IntegrityError(f"{digest}: copied content hashes to {copied}")
    return size


def transfer(
    src: Store,
    dst: Store,
    roots: Sequence[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_object: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    refs: Mapping[str, str] | None = None,
    force_refs: bool = False,
    absent_ok: bool = False,
) -> TransferResult:
    """Copy the closure of ``roots`` (and of the digests ``refs`` name) from ``src`` to
    ``dst``, then the ``refs`` themselves, so the copy is a root there too.

    A ref that names another object at the destination is left alone and
    reported, unless ``force_refs``. With ``absent_ok``, objects ``src`` lacks are
    fine when ``dst`` has them (a spool holds only what its store did not take).
    ``on_plan`` is told how many objects will
    be copied; ``on_object`` is called with each copied object's size.
    """
    refs = dict(refs or {})
    roots = list(dict.fromkeys([*roots, *refs.values()]))
    closure = walk(src, roots)
    if absent_ok and closure.missing:
        elsewhere = set(dst.missing(list(closure.missing), live=True))
        closure.missing = {d: p for d, p in closure.missing.items() if d in elsewhere}
    closure.require_complete(src.url)
    absent = set(dst.missing(closure.order, live=True))
    result = TransferResult(list(roots), present=len(closure.order) - len(absent))
    todo = [d for d in closure.order if d in absent]
    if on_plan is not None:
        on_plan(len(todo))
    plain = [d for d in todo if d not in closure.kinds]
    records = [d for d in todo if d in closure.kinds]

    def done(digest: str, size: int) -> None:
        result.copied += 1
        result.copied_bytes += size
        result.copied_digests.append(digest)
        if on_object is not None:
            on_object(size)

    with dst.batch() as batch:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {d: pool.submit(copy_object, src, batch, d) for d in plain}
            try:
                for digest, future in futures.items():
                    done(digest, future.result())
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise
        # Everything a record references is published before the record itself.
        batch.flush()
        for digest in records:  # in closure order: references first, each on its own
            done(digest, copy_object(src, batch, digest, pack=False))
    for ref, digest in refs.items():  # last: a ref never names an incomplete closure
        try:
            set_ref(dst, ref, digest, force=force_refs)
        except RefExists:
            result.conflicts[ref] = target(dst, ref)
            continue
        result.refs[ref] = digest
    return result
