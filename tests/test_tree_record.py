"""The tree record (docs/FORMAT.md section 5) check by check: each rule of a canonical
record refused with its own message, each bound at its edge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casstore.config import load_config
from casstore.errors import ArchiveError, IntegrityError
from casstore.format.tree import (
    DEFAULT_LIMITS,
    MAX_PATH,
    Entry,
    Limits,
    check,
    decode,
    encode,
    is_tree,
    normalize_path,
)

D = "blake3:" + "ab" * 32


def record(*entries: dict[str, object]) -> bytes:
    body = {"casstore": "tree/1", "entries": list(entries)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def file(path: str, size: int = 1, digest: str = D, **more: object) -> dict[str, object]:
    return {"path": path, "type": "file", "size": size, "digest": digest, **more}


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_entries_encode_in_their_canonical_form() -> None:
    entries = [
        Entry("z", "dir"),
        Entry("b", "file", 3, D, executable=True),
        Entry("a-b", "symlink", target="../x"),
        Entry("a/c", "file", 0, D),
        Entry("é", "file", 2, D, executable=False),
    ]
    data = encode(entries)
    assert data == record(
        {"path": "a-b", "type": "symlink", "target": "../x"},
        file("a/c", 0),
        file("b", 3, executable=True),
        {"path": "z", "type": "dir"},
        file("é", 2),
    )
    assert "é".encode() in data  # UTF-8, not \u escapes
    assert decode(data) == sorted(entries, key=lambda e: e.path.encode())
    assert is_tree(data) and not is_tree(b'{"casstore":"run-manifest"}')


def test_a_path_that_is_not_utf8_is_an_archive_error() -> None:
    with pytest.raises(ArchiveError, match=r"^a path that is not valid UTF-8: "):
        encode([Entry("\udc80name", "dir"), Entry("a", "dir")])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a\x00b", "'a\\x00b': a path with a NUL byte"),
        ("/etc/passwd", "'/etc/passwd': an absolute path"),
        ("a/../../b", "'a/../../b': a path that climbs out with '..'"),
        ("x" * (MAX_PATH + 1), f"{'x' * 80!r}...: a path longer than {MAX_PATH} characters"),
    ],
)
def test_unsafe_paths_are_refused_by_name(name: str, message: str) -> None:
    with pytest.raises(ArchiveError, match=exactly(message)):
        normalize_path(name)
    member_message = message.replace(repr(name[:80] if len(name) > MAX_PATH else name), "'m'")
    with pytest.raises(ArchiveError, match=exactly(member_message)):
        normalize_path(name, "m")


def test_paths_normalise_to_their_parts() -> None:
    assert normalize_path("./a//b/./c/") == "a/b/c"
    assert normalize_path("./") == normalize_path("") == ""
    assert normalize_path("a..b/..c") == "a..b/..c"
    assert normalize_path("x" * MAX_PATH) == "x" * MAX_PATH


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([Entry("", "dir")], "an entry with an empty path"),
        ([Entry("a", "dir"), Entry("a", "dir")], "'a': the same path twice"),
        (
            [Entry("l", "symlink", target="t" * (MAX_PATH + 1))],
            f"'l': a symlink target over {MAX_PATH} characters",
        ),
        (
            [Entry("a", "symlink", target="x"), Entry("a/b/c", "dir")],
            "'a/b/c': written through the symlink or file 'a'",
        ),
        (
            [Entry("a/b", "file", 1, D), Entry("a/b/c", "dir")],
            "'a/b/c': written through the symlink or file 'a/b'",
        ),
        (
            [Entry("a", "dir"), Entry("a/b/c", "dir")],
            "'a': listed as an empty folder, yet it holds entries",
        ),
        (
            [Entry("a/b", "dir"), Entry("a/b/c", "file", 1, D)],
            "'a/b': listed as an empty folder, yet it holds entries",
        ),
    ],
)
def test_entries_that_no_filesystem_holds_are_refused(entries: list[Entry], message: str) -> None:
    with pytest.raises(ArchiveError, match=exactly(message)):
        check(entries)


def test_the_longest_target_and_siblings_of_leaves_pass() -> None:
    check([Entry("a", "symlink", target="t" * MAX_PATH), Entry("ab/c", "dir")])
    check([Entry("a", "file", 1, D), Entry("a-b/c", "dir"), Entry("d", "dir")])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"casstore":"run-manifest","entries":[]}', "T is not a tree record"),
        (b"not json", "T is not a tree record"),
        (record(file("a", -1)), "T: bad size or digest for 'a'"),
        (record(file("a", 1, "blake3:abc")), "T: bad size or digest for 'a'"),
        (record(file("a", 1, "")), "T: bad size or digest for 'a'"),
        (record({"path": "/a", "type": "dir"}), "T: unsafe path '/a' in a tree record"),
        (record({"path": "a/", "type": "dir"}), "T: unsafe path 'a/' in a tree record"),
        (record({"path": "a\x00", "type": "dir"}), "T: unsafe path 'a\\x00' in a tree record"),
        (
            record({"path": "b", "type": "dir"}, {"path": "a", "type": "dir"}),
            "T: entries not in canonical order ('a' after a path that sorts after it or equals it)",
        ),
        (
            record({"path": "a", "type": "dir"}, {"path": "a", "type": "dir"}),
            "T: entries not in canonical order ('a' after a path that sorts after it or equals it)",
        ),
        (
            record({"path": "a", "type": "dir"}, {"path": "a/b", "type": "dir"}),
            "T: 'a': listed as an empty folder, yet it holds entries",
        ),
        (record(file("a", 1, executable=False)), "T: a tree record that is not in canonical form"),
        (record(file("a", 1)) + b" ", "T: a tree record that is not in canonical form"),
    ],
)
def test_records_that_are_not_canonical_are_integrity_errors(data: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=exactly(message)):
        decode(data, "T")


def test_a_record_that_does_not_decode_names_why() -> None:
    with pytest.raises(IntegrityError, match=r"^T is not a valid tree record \(.+\)$"):
        decode(b'{"casstore":"tree/1","entries":[{"path":1}]}', "T")
    with pytest.raises(IntegrityError, match=r"^tree is not a tree record$"):
        decode(b"{}")


def test_empty_files_and_the_empty_tree_are_canonical() -> None:
    assert decode(record()) == []
    assert decode(record(file("a", 0))) == [Entry("a", "file", 0, D)]


def test_limits_are_inclusive_and_say_how_to_raise_them() -> None:
    limits = Limits(max_entries=2, max_record_bytes=100)
    limits.check_size(100, "T")
    limits.check_entries(2, "T")
    with pytest.raises(
        ArchiveError,
        match=exactly(
            "T: a record of 101 bytes, more than [tree] max_record_bytes (100); "
            "raise it in store.toml to read it"
        ),
    ):
        limits.check_size(101, "T")
    with pytest.raises(
        ArchiveError,
        match=exactly(
            "T: more than 2 entries ([tree] max_entries); raise it in store.toml for a "
            "snapshot this large (about 1 KiB of memory each)"
        ),
    ):
        limits.check_entries(3, "T")
    dirs: list[dict[str, object]] = [{"path": p, "type": "dir"} for p in "abc"]
    three = record(*dirs)
    with pytest.raises(ArchiveError, match=r"^T: more than 2 entries"):
        decode(three, "T", Limits(max_entries=2))
    with pytest.raises(ArchiveError, match=f"^T: a record of {len(three)} bytes"):
        decode(three, "T", Limits(max_record_bytes=len(three) - 1))
    assert decode(three, "T", Limits(max_entries=3, max_record_bytes=len(three))) != []
    assert Limits(250_000, 32 << 20) == DEFAULT_LIMITS


def test_limits_come_from_store_toml(tmp_path: Path) -> None:
    (tmp_path / "store.toml").write_text('[tree]\nmax_entries = 7\nmax_record_bytes = "2KiB"\n')
    assert Limits.of(load_config(tmp_path / "store.toml")) == Limits(7, 2048)


_PART = st.text(st.characters(codec="utf-8", blacklist_characters="/\x00"), min_size=1).filter(
    lambda p: p not in (".", "..")
)
_ENTRY = st.builds(
    lambda parts, kind, size, executable, target: (
        Entry("/".join(parts), "file", size, D, executable)
        if kind == "file"
        else Entry("/".join(parts), kind, target=target if kind == "symlink" else "")
    ),
    st.lists(_PART, min_size=1, max_size=3),
    st.sampled_from(["file", "symlink", "dir"]),
    st.integers(0, 1 << 50),
    st.booleans(),
    st.text(st.characters(codec="utf-8"), max_size=20),
)


@given(st.lists(_ENTRY, max_size=12, unique_by=lambda e: e.path))
def test_records_are_the_bytes_the_json_module_gives(entries: list[Entry]) -> None:
    """The canonical bytes are json.dumps' (compact, UTF-8 unescaped): control
    characters, quotes, backslashes, U+2028 and characters beyond the BMP included."""
    try:
        data = encode(entries)
    except ArchiveError:
        return  # nested below a leaf: check's business, tested on its own
    ordered = sorted(entries, key=lambda e: e.path.encode())
    assert data == record(*(e.as_record() for e in ordered))


def _check_every_ancestor(ordered: list[Entry]) -> str | None:
    """check's rules as plainly as they can be written: every ancestor of every entry."""
    leaves: set[str] = set()
    folders: set[str] = set()
    for entry in ordered:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in leaves:
                return f"{entry.path!r}: written through the symlink or file {parent!r}"
            if parent in folders:
                return f"{parent!r}: listed as an empty folder, yet it holds entries"
        (folders if entry.type == "dir" else leaves).add(entry.path)
    return None


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["a", "b", "a.b", "a-b", "é"]), min_size=1, max_size=4),
            st.sampled_from(["file", "symlink", "dir"]),
        ),
        max_size=20,
        unique_by=lambda t: "/".join(t[0]),
    )
)
def test_check_refuses_what_checking_every_ancestor_refuses(
    shapes: list[tuple[list[str], str]],
) -> None:
    """check skips the ancestors of a path whose folder its predecessor shared."""
    kinds = {"file": "file", "symlink": "symlink", "dir": "dir"}
    entries = [Entry("/".join(parts), kinds[kind], 1, D) for parts, kind in shapes]  # type: ignore[arg-type]
    ordered = sorted(entries, key=lambda e: e.path.encode())
    expected = _check_every_ancestor(ordered)
    if expected is None:
        check(ordered)
    else:
        with pytest.raises(ArchiveError, match=exactly(expected)):
            check(ordered)


@given(st.lists(st.sampled_from(["a", ".", "..", "", "é", ".b", "b."]), max_size=6).map("/".join))
def test_normalised_paths_are_their_safe_parts(name: str) -> None:
    """normalize_path returns some names as they are: exactly those the plain rule keeps."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if "\x00" in name or name.startswith("/") or ".." in parts:
        with pytest.raises(ArchiveError):
            normalize_path(name)
    else:
        assert normalize_path(name) == "/".join(parts)
