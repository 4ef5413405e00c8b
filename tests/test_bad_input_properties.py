"""Damaged input yields only casstore errors: never another exception, never wrong data.

Seeded mutations of tar streams (plain, gzip, zstd), zips, tree records, pack
indexes, stored objects, digests, run manifests, ``store.toml`` and bundles.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casstore.errors import CasError
from casstore.format import tree
from casstore.format.digest import hash_bytes
from casstore.format.packindex import decode_index
from casstore.format.reader import VerifyingReader
from casstore.testing.strategies import Snapshot, snapshots
from casstore.trees.ingest import tree_digest

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for i in range(3):
            info = tarfile.TarInfo(f"d/f{i}" + "x" * (120 if i == 2 else 0))
            data = bytes([i]) * 300
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(3):
            archive.writestr(f"d/f{i}", bytes([65 + i]) * 500)
        archive.writestr("e/", b"")
    return buf.getvalue()


TAR, ZIP = _tar(), _zip()
DIGEST = re.compile(r"blake3:[0-9a-f]{64}")
mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)


def mutate(data: bytes, changes: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for position, value in changes:
        out[position % len(out)] = value
    return bytes(out[: max(1, cut % (len(out) + 1))])


@SETTINGS
@given(
    changes=mutations,
    cut=st.integers(0, 10**6),
    container=st.sampled_from(["tar", "gz", "zst", "zip"]),
)
def test_damaged_archives_give_archive_errors(
    tmp_path_factory: pytest.TempPathFactory,
    changes: list[tuple[int, int]],
    cut: int,
    container: str,
) -> None:
    data = mutate(ZIP if container == "zip" else TAR, changes, cut)
    if container == "gz":
        data = gzip.compress(data)
    elif container == "zst":
        data = zstandard.ZstdCompressor().compress(data)
    path = Path(tmp_path_factory.mktemp("fuzz")) / "snapshot"
    path.write_bytes(data)
    with contextlib.suppress(CasError):  # anything else escaping fails the test
        info = tree_digest(path)
        assert DIGEST.fullmatch(info.digest)


def _record_of(snapshot: Snapshot) -> bytes:
    entries = [
        tree.Entry(p, "file", len(d), hash_bytes(d), x) for p, (d, x) in snapshot.files.items()
    ]
    entries += [tree.Entry(p, "symlink", target=t) for p, t in snapshot.symlinks.items()]
    entries += [tree.Entry(p, "dir") for p in snapshot.folders]
    return tree.encode(entries)


@SETTINGS
@given(
    data=st.binary(max_size=300)
    | st.builds(lambda s, c, n: mutate(_record_of(s), c, n), snapshots(), mutations, st.integers())
    | st.builds(_record_of, snapshots())
)
def test_malformed_tree_records_are_integrity_errors(data: bytes) -> None:
    try:
        entries = tree.decode(data)
    except CasError:
        return
    # Whatever decodes is exactly the canonical record of its entries.
    assert tree.encode(entries) == data


@SETTINGS
@given(data=st.binary(max_size=300))
def test_malformed_pack_indexes_and_objects_are_integrity_errors(data: bytes) -> None:
    with contextlib.suppress(CasError):
        rows = decode_index(data, "index")
        assert len(data) == 16 + 52 * len(rows)
    digest = "blake3:" + blake3(b"the real content").hexdigest()
    with contextlib.suppress(CasError), VerifyingReader(io.BytesIO(data), digest) as reader:
        content = reader.read()
        # Never wrong bytes: whatever is returned is the content named by the digest.
        assert "blake3:" + blake3(content).hexdigest() == digest


@SETTINGS
@given(text=st.text(max_size=80) | st.from_regex(r"(blake3:)?[0-9a-fA-F]{0,70}", fullmatch=True))
def test_digests_parse_or_raise_invalid_digest(text: str) -> None:
    from casstore.errors import InvalidDigest
    from casstore.format.digest import parse_digest

    with contextlib.suppress(InvalidDigest):
        assert DIGEST.fullmatch(parse_digest(text))


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


@SETTINGS
@given(
    data=st.binary(max_size=400)
    | st.builds(lambda c, n: mutate(MANIFEST, c, n), mutations, st.integers(0, 10**6))
)
def test_damaged_manifests_raise_manifest_errors(data: bytes) -> None:
    from casstore.errors import ManifestError
    from casstore.format.manifest import decode, encode

    with contextlib.suppress(ManifestError):
        record = decode(data)
        encode(record)  # whatever decodes is a record that encodes


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
    with contextlib.suppress(ConfigError):
        config = load_config(path)
        config.storage_options("s3://bucket/prefix")


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
    except CasError:
        assert list(store.iter_digests()) == []  # refused: nothing imported
        return
    for digest in result.roots:  # accepted: then every byte is right
        assert "blake3:" + blake3(store.get_bytes(digest)).hexdigest() == digest
