"""A stateful test: random sequences of put, get, tag, untag, gc and fsck against a plain
dict model. Whatever a tag reaches must read back exactly, after any sequence; hypothesis
shrinks a sequence that loses data to the shortest one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from casstore.errors import ObjectNotFound, RefExists
from casstore.format.digest import hash_bytes
from casstore.maintenance.fsck import fsck
from casstore.maintenance.gc import collect
from casstore.store.open import init_store
from tests.helpers import record_referencing

blobs = st.one_of(st.binary(max_size=40), st.binary(min_size=1, max_size=8).map(lambda b: b * 9000))


class StoreModel(RuleBasedStateMachine):
    digests = Bundle("digests")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="cas-model-"))
        self.store, _ = init_store(str(self.folder / "store"))
        #: Everything ever stored: digest -> content (what a read must return, if anything).
        self.content: dict[str, bytes] = {}
        #: Digest -> the digests a record stored here references.
        self.references: dict[str, list[str]] = {}
        self.tags: dict[str, str] = {}
        #: Stored since the last gc, or reachable at it: must read back.
        self.certain: set[str] = set()

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _reachable(self) -> set[str]:
        return self._closure(*self.tags.values())

    def _closure(self, *roots: str) -> set[str]:
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            digest = stack.pop()
            if digest not in seen:
                seen.add(digest)
                stack.extend(self.references.get(digest, []))
        return seen

    def _stored(self, digest: str, data: bytes) -> str:
        assert digest == hash_bytes(data)
        self.content[digest] = data
        self.certain.add(digest)
        return digest

    @rule(target=digests, data=blobs)
    def put(self, data: bytes) -> str:
        return self._stored(self.store.put_bytes(data).digest, data)

    @rule(target=digests, items=st.lists(blobs, min_size=1, max_size=4))
    def put_many(self, items: list[bytes]) -> str:
        digests = self.store.put_many(items)
        for digest, data in zip(digests, items, strict=True):
            self._stored(digest, data)
        return digests[0]

    @rule(target=digests, refs=st.lists(digests, max_size=3))
    def put_record(self, refs: list[str]) -> str:
        for ref in refs:  # the writer's contract: what a record names is put (or checked) first
            self.store.put_bytes(self.content[ref])
            self.certain.add(ref)
        digest = record_referencing(self.store, *refs)
        self.references[digest] = refs
        return self._stored(digest, self.store.get_bytes(digest))

    @rule(digest=digests)
    def get(self, digest: str) -> None:
        try:
            assert self.store.get_bytes(digest) == self.content[digest]
        except ObjectNotFound:
            assert digest not in self.certain

    @rule(name=st.sampled_from(["a", "b", "run-1"]), digest=digests)
    def tag(self, name: str, digest: str) -> None:
        # The writer's contract: everything a new root reaches is put first (gc may have
        # taken it since it was stored).
        for reached in self._closure(digest):
            self.store.put_bytes(self.content[reached])
        if self.tags.get(name, digest) != digest:
            with pytest.raises(RefExists):  # a tag never moves silently
                self.store.tag(name, digest)
            return
        self.store.tag(name, digest)
        self.tags[name] = digest

    @precondition(lambda self: bool(self.tags))
    @rule(data=st.data())
    def untag(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.tags)))
        self.store.untag(name)
        del self.tags[name]

    @rule()
    def gc(self) -> None:
        collect(self.store, grace=0)
        self.certain = self._reachable()

    @rule()
    def check(self) -> None:
        result = fsck(self.store)
        assert result.corrupt == {}
        reachable = self._reachable()
        assert not {d for d in result.missing if d in reachable}

    @invariant()
    def tagged_closures_read_back(self) -> None:
        for digest in self._reachable():
            assert self.store.get_bytes(digest) == self.content[digest]


StoreModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreModel = StoreModel.TestCase
