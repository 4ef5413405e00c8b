"""Damaged input yields only casstore errors: never another exception, never wrong data.

Seeded mutations of tar streams (plain, gzip, zstd), zips, tree records, pack
indexes and stored objects.
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

from casstore import tree
from casstore.errors import CasError
from casstore.objectfile import VerifyingReader
from casstore.packs import decode_index
from casstore.snapshot import tree_digest

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


@SETTINGS
@given(
    data=st.binary(max_size=300)
    | st.text(max_size=200).map(lambda s: ('{"casstore":"tree/1","entries":' + s + "}").encode())
)
def test_malformed_tree_records_are_integrity_errors(data: bytes) -> None:
    with contextlib.suppress(CasError):
        entries = tree.decode(data)
        tree.encode(entries)  # whatever decodes is a valid tree


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
