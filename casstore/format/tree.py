"""The tree record: a snapshot as canonical bytes, independent of its container.

A tree lists regular files (size, digest, executable bit), symlinks (target)
and empty directories, sorted by the UTF-8 bytes of their paths. Nothing else
(mtimes, owners, other permission bits, member order, compression) is
recorded, so one filesystem state has one digest (``docs/FORMAT.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from casstore.errors import ArchiveError, IntegrityError
from casstore.format.digest import is_digest
from casstore.format.records import TREE_KIND, record_kind

if TYPE_CHECKING:
    from casstore.config import Config

KIND = TREE_KIND
Kind = Literal["file", "symlink", "dir"]
#: The longest path or symlink target a tree holds, in characters (Linux's PATH_MAX):
#: no snapshot could be materialised with a longer one.
MAX_PATH = 4096


@dataclass(frozen=True)
class Limits:
    """How large a tree casstore builds or reads, and the largest record (tree, run
    manifest, grading, suite) it reads (``[tree]`` of store.toml): a decoded entry
    costs about 1 KiB of memory, so the defaults keep a tree under ~256 MB."""

    max_entries: int = 250_000
    max_record_bytes: int = 32 << 20

    @classmethod
    def of(cls, config: Config) -> Limits:
        from casstore.config import parse_size

        section = config.file.tree
        return cls(section.max_entries, parse_size(section.max_record_bytes))

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_record_bytes:
            raise ArchiveError(
                f"{what}: a record of {size} bytes, more than [tree] max_record_bytes "
                f"({self.max_record_bytes}); raise it in store.toml to read it"
            )

    def check_entries(self, count: int, what: str) -> None:
        if count > self.max_entries:
            raise ArchiveError(
                f"{what}: more than {self.max_entries} entries ([tree] max_entries); raise "
                "it in store.toml for a snapshot this large (about 1 KiB of memory each)"
            )


DEFAULT_LIMITS = Limits()


class Entry(msgspec.Struct, frozen=True):
    path: str
    type: Kind
    size: int = 0
    digest: str = ""
    executable: bool = False
    target: str = ""

    def as_record(self) -> dict[str, Any]:
        # Key order is part of the canonical encoding.
        if self.type == "file":
            out: dict[str, Any] = {
                "path": self.path,
                "type": "file",
                "size": self.size,
                "digest": self.digest,
            }
            if self.executable:
                out["executable"] = True
            return out
        if self.type == "symlink":
            return {"path": self.path, "type": "symlink", "target": self.target}
        return {"path": self.path, "type": "dir"}


def normalize_path(name: str, member: str | None = None) -> str:
    """A safe relative POSIX path, or ArchiveError naming the member."""
    if (
        "\x00" not in name
        and len(name) <= MAX_PATH
        and not name.startswith((".", "/"))
        and "/." not in name
        and "//" not in name
        and not name.endswith("/")
    ):
        return name  # no part to drop or refuse: as it is (most names, read for each member)
    what = member if member is not None else name
    if "\x00" in name:
        raise ArchiveError(f"{what!r}: a path with a NUL byte")
    if len(name) > MAX_PATH:
        raise ArchiveError(f"{what[:80]!r}...: a path longer than {MAX_PATH} characters")
    path = name
    if path.startswith("/"):
        raise ArchiveError(f"{what!r}: an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError(f"{what!r}: a path that climbs out with '..'")
    if not parts:
        return ""
    return "/".join(parts)


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def encode(entries: list[Entry]) -> bytes:
    """The canonical bytes of a tree record. Entries are checked and sorted here."""
    return _encode_sorted(sorted(entries, key=lambda e: _sort_key(e.path)))


def _encode_sorted(ordered: list[Entry]) -> bytes:
    check(ordered)
    record = {"casstore": KIND, "entries": [e.as_record() for e in ordered]}
    try:
        # The bytes json.dumps(separators=(",", ":"), ensure_ascii=False) gives, ten
        # times faster (the golden trees and a property test hold them equal).
        return _ENCODER.encode(record)
    except UnicodeEncodeError as exc:
        raise ArchiveError(f"a path that is not valid UTF-8: {exc.object!r}") from None


def check(ordered: list[Entry]) -> None:
    """No duplicates, nothing stored below a symlink or a file, and folders listed
    only when empty (those that hold something are implied)."""
    leaves: set[str] = set()
    folders: set[str] = set()
    previous = None
    checked = None  # the folder whose ancestors were checked last
    for entry in ordered:
        if not entry.path:
            raise ArchiveError("an entry with an empty path")
        if entry.path == previous:
            raise ArchiveError(f"{entry.path!r}: the same path twice")
        if len(entry.target) > MAX_PATH:
            raise ArchiveError(f"{entry.path!r}: a symlink target over {MAX_PATH} characters")
        previous = entry.path
        folder = entry.path.rpartition("/")[0]
        if folder == checked:
            # Its siblings checked them, and only paths inside the folder were added since.
            (folders if entry.type == "dir" else leaves).add(entry.path)
            continue
        checked = folder
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in leaves:
                raise ArchiveError(
                    f"{entry.path!r}: written through the symlink or file {parent!r}"
                )
            if parent in folders:
                raise ArchiveError(f"{parent!r}: listed as an empty folder, yet it holds entries")
        if entry.type == "dir":
            folders.add(entry.path)
        else:
            leaves.add(entry.path)


class _Record(msgspec.Struct):
    casstore: str
    entries: list[Entry]


_DECODER = msgspec.json.Decoder(_Record)
_ENCODER = msgspec.json.Encoder()


def decode(data: bytes, digest: str = "tree", limits: Limits = DEFAULT_LIMITS) -> list[Entry]:
    """Entries of a stored tree record; IntegrityError unless it is one, canonical,
    and ArchiveError when it is larger than ``limits``.

    Canonical means what :func:`encode` writes: entries strictly sorted, no
    duplicate, nothing below a file or symlink, and the same bytes when encoded
    again. Anything else was not written by casstore and is refused before a
    checkout could act on it.
    """
    if record_kind(data) != KIND:
        raise IntegrityError(f"{digest} is not a tree record")
    limits.check_size(len(data), digest)
    try:
        entries = _DECODER.decode(data).entries
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IntegrityError(f"{digest} is not a valid tree record ({exc})") from None
    limits.check_entries(len(entries), digest)
    previous = b""
    for entry in entries:
        if entry.type == "file" and (entry.size < 0 or not is_digest(entry.digest)):
            raise IntegrityError(f"{digest}: bad size or digest for {entry.path!r}")
        try:
            safe = normalize_path(entry.path) == entry.path
        except ArchiveError:
            safe = False
        if not safe:
            raise IntegrityError(f"{digest}: unsafe path {entry.path!r} in a tree record")
        key = _sort_key(entry.path)
        if previous and key <= previous:
            raise IntegrityError(
                f"{digest}: entries not in canonical order ({entry.path!r} after a path "
                "that sorts after it or equals it)"
            )
        previous = key
    try:
        canonical = _encode_sorted(entries)  # in order: checked above
    except ArchiveError as exc:
        raise IntegrityError(f"{digest}: {exc}") from None
    if canonical != data:
        raise IntegrityError(f"{digest}: a tree record that is not in canonical form")
    return entries


def is_tree(head: bytes) -> bool:
    return record_kind(head) == KIND
