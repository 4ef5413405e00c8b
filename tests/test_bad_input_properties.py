"""Damaged input yields only casstore errors: never another exception, never wrong data.

Each test builds a valid structure (an archive of a generated snapshot in every
container, a tree record, a pack index, a stored object, a digest, a run
manifest, a bundle), damages it in its fields or bytes, and requires that the
examples reach the deep check (what a broken check in the code would let
through) for a share of examples, counted with hypothesis's ``event()``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import struct
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from blake3 import blake3
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from casstore.errors import CasError
from casstore.format import tree
from casstore.format.digest import hash_bytes
from casstore.format.objects import HEADER_SIZE, unpack_header, write_object
from casstore.format.packindex import Row, decode_index, encode_index
from casstore.format.reader import VerifyingReader
from casstore.testing.strategies import Snapshot, snapshots
from casstore.trees.ingest import tree_digest

#: Derandomized: the same examples on every run, so a share a test requires cannot be
#: missed by an unlucky draw (a failing example is still shrunk and reported).
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


class Branches:
    """Which branch each example reached, so a test can require that its deep check
    (the one a mutant of the code would trip) ran for a share of examples, not never."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def reach(self, name: str) -> None:
        event(name)
        self.counts[name] += 1

    def require(self, share: float, *names: str) -> None:
        total = sum(self.counts.values())
        reached = sum(self.counts[name] for name in names)
        assert total and reached >= share * total, dict(self.counts)


def one_line(exc: CasError) -> None:
    assert str(exc) and "\n" not in str(exc), repr(exc)


DIGEST = re.compile(r"blake3:[0-9a-f]{64}")
mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)


def mutate(data: bytes, changes: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for position, value in changes:
        out[position % len(out)] = value
    return bytes(out[: max(1, cut % (len(out) + 1))])


# -- archives ------------------------------------------------------------------------


def _tar_of(snapshot: Snapshot) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(snapshot.folders):
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for path, (data, executable) in sorted(snapshot.files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755 if executable else 0o644
            archive.addfile(info, io.BytesIO(data))
        for path, target in sorted(snapshot.symlinks.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buf.getvalue()


def _zip_of(snapshot: Snapshot) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(snapshot.folders):
            archive.writestr(path + "/", b"")
        for path, (data, executable) in sorted(snapshot.files.items()):
            info = zipfile.ZipInfo(path)
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buf.getvalue()


#: Compressors of a tar, each with the checksum its format offers (zstd's is optional:
#: the zstd command writes it by default).
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "tar": lambda data: data,
    "tar.gz": gzip.compress,
    "tar.zst": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
    "tar.xz": lzma.compress,
    "tar.bz2": bz2.compress,
}
DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "tar": lambda data: data,
    "tar.gz": gzip.decompress,
    "tar.zst": lambda data: zstandard.ZstdDecompressor().stream_reader(data).read(),
    "tar.xz": lzma.decompress,
    "tar.bz2": bz2.decompress,
}


def _with_field(tar: bytes, member: int, field: tuple[int, int], value: bytes) -> bytes:
    """``tar`` with one field of its ``member``-th header block set to ``value`` and
    the checksum made right again, so the damage reaches past the checksum."""
    out = bytearray(tar)
    offsets = []
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        offsets = [info.offset for info in archive.getmembers()]
    if not offsets:
        return tar
    at = offsets[member % len(offsets)]
    start, length = field
    out[at + start : at + start + length] = value.ljust(length, b"\0")[:length]
    out[at + 148 : at + 156] = b" " * 8
    out[at + 148 : at + 156] = b"%06o\0 " % sum(out[at : at + 512])
    return bytes(out)


TAR_FIELDS = {"name": (0, 100), "mode": (100, 8), "size": (124, 12), "type": (156, 1)}
FIELD_VALUES = [b"0", b"7", b"5", b"2", b"Z", b"777", b"0000644", b"00000000001", b"77777777777"]
FIELD_VALUES += [b"a/../../x", b"-1", b"\xff" * 12, b"1 2", b""]


def _reference_digest(container: str, data: bytes, path: Path) -> str | None:
    """What Python's own readers make of damaged bytes, as the digest of a clean tar of
    the same members; None when they cannot read it all (casstore must refuse then)."""
    try:
        inner = DECOMPRESS[container](data)
        clean = io.BytesIO()
        with (
            tarfile.open(fileobj=io.BytesIO(inner)) as archive,
            tarfile.open(fileobj=clean, mode="w", format=tarfile.PAX_FORMAT) as out,
        ):
            for info in archive:
                content = archive.extractfile(info) if info.isfile() else None
                out.addfile(info, io.BytesIO(content.read()) if content else None)
    except Exception:  # whatever the reference trips on, casstore must not accept
        return None
    path.write_bytes(clean.getvalue())
    try:
        return tree_digest(path).digest
    except CasError:
        return None


class Damaged(tuple[str, str, bytes, bytes]):
    """(container, how, undamaged, damaged), shown by what was done, not by its bytes."""

    def __repr__(self) -> str:
        container, how, good, damaged = self
        changed = [i for i, (a, b) in enumerate(zip(good, damaged, strict=False)) if a != b]
        return (
            f"<{container} damaged by {how}: {len(good)} -> {len(damaged)} bytes, at {changed[:8]}>"
        )


@st.composite
def damaged_archives(draw: st.DrawFn) -> Damaged:
    """(container, undamaged, damaged): a valid snapshot as an archive, then damaged in
    its structure: a header field (checksum made right), bytes of the inner tar, bytes
    of the compressed stream, or a cut anywhere, member boundaries included."""
    container = draw(st.sampled_from([*COMPRESS, "zip"]))
    snapshot = draw(snapshots())
    if container == "zip":
        good = _zip_of(snapshot)
        how = draw(st.sampled_from(["bytes", "cut"]))
        changes, cut = draw(mutations), draw(st.integers(0, 10**6))
        return Damaged((container, how, good, mutate(good, changes if how == "bytes" else [], cut)))
    tar = _tar_of(snapshot)
    how = draw(st.sampled_from(["field", "inner", "outer", "cut", "boundary"]))
    if how == "field":
        field = draw(st.sampled_from(sorted(TAR_FIELDS)))
        damaged = _with_field(
            tar, draw(st.integers(0, 100)), TAR_FIELDS[field], draw(st.sampled_from(FIELD_VALUES))
        )
        return Damaged((container, how, COMPRESS[container](tar), COMPRESS[container](damaged)))
    if how == "inner":
        damaged = mutate(tar, draw(mutations), len(tar))
        return Damaged((container, how, COMPRESS[container](tar), COMPRESS[container](damaged)))
    if how == "boundary":
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            ends = [info.offset_data + -(-info.size // 512) * 512 for info in archive]
        cut = draw(st.sampled_from([0, *ends]))
        return Damaged((container, how, COMPRESS[container](tar), COMPRESS[container](tar[:cut])))
    good = COMPRESS[container](tar)
    if how == "outer":
        return Damaged((container, how, good, mutate(good, draw(mutations), len(good))))
    return Damaged((container, how, good, good[: draw(st.integers(0, len(good)))]))


def test_damaged_archives_are_refused_or_read_as_their_reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    branches = Branches()

    @SETTINGS
    @given(damaged_archives())
    def check(case: Damaged) -> None:
        container, _, good, damaged = case
        folder = Path(tmp_path_factory.mktemp("fuzz"))
        original = folder / f"good.{container}"
        original.write_bytes(good)
        path = folder / f"damaged.{container}"
        path.write_bytes(damaged)
        try:
            digest = tree_digest(path).digest
        except CasError as exc:  # anything else escaping fails the test
            one_line(exc)
            branches.reach("refused")
            return
        if digest == tree_digest(original).digest:
            branches.reach("accepted: the undamaged snapshot")
            return
        # A different snapshot: only where the damage made another valid archive
        # (tar and zip keep no checksum over member data or modes), as the
        # reference reader reads it.
        assert container != "zip", "a zip damaged into another snapshot"
        branches.reach("accepted: another valid archive")
        assert digest == _reference_digest(container, damaged, folder / "reference.tar")

    check()
    branches.require(0.1, "accepted: the undamaged snapshot", "accepted: another valid archive")
    branches.require(0.1, "refused")


# -- tree records --------------------------------------------------------------------


def _record_of(snapshot: Snapshot) -> bytes:
    entries = [
        tree.Entry(p, "file", len(d), hash_bytes(d), x) for p, (d, x) in snapshot.files.items()
    ]
    entries += [tree.Entry(p, "symlink", target=t) for p, t in snapshot.symlinks.items()]
    entries += [tree.Entry(p, "dir") for p in snapshot.folders]
    return tree.encode(entries)


#: Values an entry's field may be damaged to, by field: each near what a check guards.
ENTRY_VALUES: dict[str, list[object]] = {
    "path": ["", "../x", "/abs", "a//b", "./a", "a/", "a/../b", "x" * 5000, 7, None],
    "type": ["fifo", "", "FILE", None, 1],
    "size": [-1, -(2**40), 2**70, "7", 1.5, None],
    "digest": [
        "blake3:" + "G" * 64, "blake3:" + "ab" * 31, "sha256:" + "0" * 64, "ab" * 32,
        "BLAKE3:" + "AB" * 32, "", None,
    ],
    "x": [1, 0, "yes", None],
    "target": ["", "x" * 5000, 3, None],
}  # fmt: skip


@st.composite
def damaged_records(draw: st.DrawFn) -> bytes:
    """A valid tree record changed as JSON (a field set, removed or added, entries
    swapped or repeated), so the damage reaches the checks after parsing."""
    record = json.loads(_record_of(draw(snapshots())))
    entries = record["entries"] or [{"path": "a", "type": "dir"}]
    record["entries"] = entries
    how = draw(st.sampled_from(["valid", "field", "drop", "extra", "swap", "repeat", "kind"]))
    if how == "valid":  # another valid record: the deep checks must let it through
        for entry in entries:
            if entry["type"] == "file":
                entry["size"] = draw(st.integers(0, 2**40))
                entry["digest"] = "blake3:" + draw(st.binary(min_size=32, max_size=32)).hex()
    elif how == "kind":
        record["casstore"] = draw(st.sampled_from(["tree/2", "run-manifest", "", 1]))
    elif entries:
        i = draw(st.integers(0, len(entries) - 1))
        entry = entries[i]
        if how == "field":
            key = draw(st.sampled_from(sorted(ENTRY_VALUES)))
            entry[key] = draw(st.sampled_from(ENTRY_VALUES[key]))
        elif how == "drop":
            entry.pop(draw(st.sampled_from(sorted(entry))))
        elif how == "extra":
            entry[draw(st.sampled_from(["mtime", "mode", "a"]))] = 1
        elif how == "swap" and len(entries) > 1:
            j = draw(st.integers(0, len(entries) - 1))
            entries[i], entries[j] = entries[j], entries[i]
        elif how == "repeat":
            entries.insert(i, dict(entry))
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogateescape"
    )


def test_damaged_tree_records_are_integrity_errors_or_canonical() -> None:
    branches = Branches()

    @SETTINGS
    @given(data=damaged_records())
    def check(data: bytes) -> None:
        try:
            entries = tree.decode(data)
        except CasError as exc:
            one_line(exc)
            branches.reach(
                "parsed, then refused" if data.startswith(b'{"casstore":"tree/1"') else "refused"
            )
            return
        branches.reach("decoded")
        # Whatever decodes is exactly the canonical record of its entries, and every
        # entry is one a checkout can act on.
        assert tree.encode(entries) == data
        for entry in entries:
            assert tree.normalize_path(entry.path) == entry.path
            if entry.type == "file":
                assert entry.size >= 0 and DIGEST.fullmatch(entry.digest), entry

    check()
    branches.require(0.1, "decoded")
    branches.require(0.2, "parsed, then refused")


# -- pack indexes and stored objects -------------------------------------------------

index_rows = st.lists(
    st.tuples(
        st.binary(min_size=32, max_size=32).map(lambda raw: "blake3:" + raw.hex()),
        *[st.integers(0, 2**31) for _ in range(4)],
    ),
    max_size=6,
    unique_by=lambda row: row[0],
)


def test_damaged_pack_indexes_are_integrity_errors() -> None:
    branches = Branches()

    @SETTINGS
    @given(
        rows=index_rows,
        how=st.sampled_from(["bytes", "cut", "append", "count"]),
        changes=mutations,
        n=st.integers(0, 200),
    )
    def check(rows: list[Row], how: str, changes: list[tuple[int, int]], n: int) -> None:
        good = encode_index(rows)
        if how == "bytes":
            data = mutate(good, changes, len(good))
        elif how == "cut":
            data = good[: n % (len(good) + 1)]
        elif how == "append":
            data = good + bytes(n % 60 + 1)
        else:  # the header's entry count, set wrong
            data = good[:8] + struct.pack("<Q", n) + good[16:]
        try:
            decoded = decode_index(data, "index")
        except CasError as exc:
            one_line(exc)
            branches.reach("refused")
            return
        branches.reach("decoded")
        # The header's count, the length and the rows agree; each row is what its bytes say.
        assert struct.unpack_from("<Q", data, 8)[0] == len(decoded) == len(rows)
        assert len(data) == 16 + 52 * len(decoded)
        assert decoded == _rows_of(data)

    check()
    branches.require(0.1, "decoded")
    branches.require(0.2, "refused")


def _rows_of(data: bytes) -> list[Row]:
    return [
        ("blake3:" + data[at : at + 32].hex(), *struct.unpack_from("<QIII", data, at + 32))
        for at in range(16, len(data), 52)
    ]


CONTENTS = [b"", b"x", b"the real content " * 40, bytes(range(256)) * 9]


def test_damaged_stored_objects_never_read_as_wrong_bytes() -> None:
    branches = Branches()

    @SETTINGS
    @given(
        content=st.sampled_from(CONTENTS) | st.binary(max_size=2000),
        how=st.sampled_from(["body", "size", "cut", "append", "anywhere", "none"]),
        changes=mutations,
        n=st.integers(0, 10**6),
    )
    def check(content: bytes, how: str, changes: list[tuple[int, int]], n: int) -> None:
        out = io.BytesIO()  # zstd for the repetitive contents, raw for random ones
        write_object(io.BytesIO(content), out, level=3, threads=0)
        good = out.getvalue()
        header, body = good[:HEADER_SIZE], good[HEADER_SIZE:]
        if how == "body" and body:
            data = header + mutate(body, changes, len(body))
        elif how == "size":  # the header's content size, set wrong
            data = header[:8] + struct.pack("<Q", n % (len(content) + 3)) + body
        elif how == "cut":
            data = header + body[: n % (len(body) + 1)]
        elif how == "append":
            data = good + bytes([n % 256]) * (n % 5 + 1)
        elif how == "anywhere":
            data = mutate(good, changes, n)
        else:  # undamaged: the reader must return it (the branch a mutant breaks)
            data = good
        digest = hash_bytes(content)
        try:
            unpack_header(data, "object")
        except CasError:
            branches.reach("refused at the header")
            return
        try:
            with VerifyingReader(io.BytesIO(data), digest) as reader:
                read = reader.read()
        except CasError as exc:
            one_line(exc)
            branches.reach("read, then refused")
            return
        branches.reach("returned")
        # Never wrong bytes: whatever is returned is the content named by the digest.
        assert read == content

    check()
    branches.require(0.2, "read, then refused")
    branches.require(0.05, "returned")


# -- digests -------------------------------------------------------------------------


@st.composite
def damaged_digests(draw: st.DrawFn) -> str:
    """A valid digest, then a character replaced, removed or added, the prefix changed
    or the case changed: nearly valid strings that reach every check."""
    text = "blake3:" + draw(st.binary(min_size=32, max_size=32)).hex()
    how = draw(st.sampled_from(["replace", "remove", "add", "prefix", "upper", "bare", "none"]))
    at = draw(st.integers(0, len(text) - 1))
    char = draw(st.sampled_from("0aAfFgz:- \u00e9\n"))
    if how == "replace":
        text = text[:at] + char + text[at + 1 :]
    elif how == "remove":
        text = text[:at] + text[at + 1 :]
    elif how == "add":
        text = text[:at] + char + text[at:]
    elif how == "prefix":
        text = draw(st.sampled_from(["sha256:", "BLAKE3:", "blake3", "b3:"])) + text[7:]
    elif how == "upper":
        text = text.upper()
    elif how == "bare":
        text = text[7:]
    return text


def test_digests_parse_or_raise_invalid_digest() -> None:
    from casstore.errors import InvalidDigest
    from casstore.format.digest import parse_digest

    branches = Branches()

    @SETTINGS
    @given(text=damaged_digests() | st.text(max_size=80))
    def check(text: str) -> None:
        try:
            parsed = parse_digest(text)
        except InvalidDigest as exc:
            one_line(exc)
            branches.reach("refused")
            return
        branches.reach("parsed")
        assert DIGEST.fullmatch(parsed)
        # Parsing only adds the prefix or lowers the case: the hex digits are the same.
        assert parsed[7:] == text.lower().removeprefix("blake3:")

    check()
    branches.require(0.1, "parsed")
    branches.require(0.2, "refused")


# -- manifests, store.toml, bundles --------------------------------------------------


def _golden_manifest() -> bytes:
    from casstore.format.manifest import Ref, RunManifest, encode

    digest = "blake3:" + "ab" * 32
    return encode(
        RunManifest(
            trajectory_id="t",
            orchestrator_extra_args={"temperature": 0.5, "nested": {"a": [1, 2]}},
            initial_snapshot=Ref(digest, 10),
            artifacts={"log": Ref(digest, 3)},
        )
    )


MANIFEST = _golden_manifest()


MANIFEST_VALUES: list[Any] = [
    None, 0, -1, 1.5, "", "x", "1.0", "1.1", "9.9", [], {}, {"digest": "x", "size": 1},
    {"digest": "blake3:" + "cd" * 32, "size": -1}, {"digest": "blake3:" + "cd" * 32, "size": 5},
    {"a": {"b": [1, {"c": None}]}}, True, 2**64,
]  # fmt: skip


@st.composite
def damaged_manifests(draw: st.DrawFn) -> bytes:
    """The golden manifest changed as JSON (a field removed, added, set to a value of
    another type or of its own type), or its bytes."""
    how = draw(st.sampled_from(["bytes", "drop", "set", "retype"]))
    if how == "bytes":
        return mutate(MANIFEST, draw(mutations), draw(st.integers(0, 10**6)))
    record = json.loads(MANIFEST)
    key = draw(st.sampled_from([*sorted(record), "unknown_field"]))
    if how == "drop":
        record.pop(key, None)
    elif how == "set" and key in record:
        same_type = [v for v in MANIFEST_VALUES if type(v) is type(record[key])]
        record[key] = draw(st.sampled_from(same_type or [None]))
    else:
        record[key] = draw(st.sampled_from(MANIFEST_VALUES))
    return json.dumps(record, separators=(",", ":")).encode()


def test_damaged_manifests_raise_manifest_errors() -> None:
    from casstore.errors import ManifestError
    from casstore.format.manifest import decode, encode

    branches = Branches()

    @SETTINGS
    @given(data=damaged_manifests())
    def check(data: bytes) -> None:
        try:
            record = decode(data)
        except ManifestError as exc:
            one_line(exc)
            branches.reach("refused")
            return
        branches.reach("decoded")
        assert decode(encode(record)) == record  # whatever decodes is a record that round-trips

    check()
    branches.require(0.1, "decoded")
    branches.require(0.2, "refused")


@SETTINGS
@given(
    text=st.text(max_size=300)
    | st.builds(
        lambda key, value: f"[store]\n{key} = {value}\n",
        st.sampled_from(["url", "compression_level", "read_only", "nope", "compression_threads"]),
        st.sampled_from(['"x"', "3", "true", "[1]", "-1", '"s3://"', "1e999", "{a=1}"]),
    )
    | st.builds(
        lambda section, body: f"[{section}]\n{body}\n",
        st.sampled_from(["s3", "cache", "tree", "remotes.a", "remotes", "store.x", "other"]),
        st.text(max_size=60),
    )
)
def test_malformed_store_toml_raises_config_errors(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    from casstore.config import load_config
    from casstore.errors import ConfigError

    path = Path(tmp_path_factory.mktemp("toml")) / "store.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(path)
        config.storage_options("s3://bucket/prefix")
    except ConfigError as exc:
        one_line(exc)


def _bundle(tmp: Path) -> tuple[bytes, str]:
    from casstore.graph.bundle import write_bundle
    from casstore.store.open import init_store

    store, _ = init_store(str(tmp / "src"))
    blobs = [store.put_bytes(bytes([i]) * (100 + i)).digest for i in range(3)]
    refs = ",".join(f'{{"digest":"{d}","size":0}}' for d in blobs)
    root = store.put_bytes(
        (
            '{"casstore":"run-manifest","schema_version":"1.0","artifacts":{"a":'
            + refs.split("},")[0]
            + "}}}"
        ).encode()
    ).digest
    out = io.BytesIO()
    write_bundle(store, [root, *blobs], out)
    return out.getvalue(), root


@SETTINGS
@given(changes=mutations, cut=st.integers(0, 10**6), raw=st.booleans())
def test_damaged_bundles_raise_casstore_errors_and_import_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    changes: list[tuple[int, int]],
    cut: int,
    raw: bool,
) -> None:
    from casstore.graph.bundle import read_bundle
    from casstore.store.open import init_store

    tmp = Path(tmp_path_factory.mktemp("bundle"))
    bundle, _ = _bundle(tmp)
    if raw:
        # Damage inside the compression: the tar itself, recompressed.
        inner = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bundle)).read()
        data = zstandard.ZstdCompressor().compress(mutate(inner, changes, cut))
    else:
        data = mutate(bundle, changes, cut)
    path = tmp / "damaged.casb"
    path.write_bytes(data)
    store, _ = init_store(str(tmp / "dst"))
    try:
        result = read_bundle(store, path)
    except CasError as exc:
        one_line(exc)
        event("refused")
        assert list(store.iter_digests()) == []  # refused: nothing imported
        return
    event("accepted")
    for digest in result.roots:  # accepted: then every byte is right
        assert "blake3:" + blake3(store.get_bytes(digest)).hexdigest() == digest
