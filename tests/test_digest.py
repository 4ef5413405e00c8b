"""The digest contract, pinned by the official BLAKE3 test vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from casstore.errors import InvalidDigest
from casstore.format.digest import (
    format_digest,
    hash_bytes,
    hash_file,
    looks_like_digest,
    parse_digest,
    parse_prefix,
)
from casstore.store.objects import Store
from tests.helpers import run_cas

# From BLAKE3's test_vectors.json: input is bytes(i % 251 for i in range(len)),
# hash truncated to the default 32-byte output.
GOLDEN = {
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    1023: "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
    1024: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
    1025: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
    2048: "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
    3073: "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
    4096: "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
}


def vector_input(length: int) -> bytes:
    return bytes(i % 251 for i in range(length))


@pytest.mark.parametrize(("length", "expected"), sorted(GOLDEN.items()))
def test_golden_vectors_through_every_put(
    length: int, expected: str, local_store: Store, tmp_path: Path
) -> None:
    data = vector_input(length)
    assert hash_bytes(data) == "blake3:" + expected
    assert local_store.put_bytes(data).digest == "blake3:" + expected
    path = tmp_path / f"v{length}"
    path.write_bytes(data)
    assert local_store.put_file(path).digest == "blake3:" + expected


def test_cas_put_prints_b3sum_hex(tmp_path: Path) -> None:
    path = tmp_path / "v1025"
    path.write_bytes(vector_input(1025))
    result = run_cas("--store", str(tmp_path / "s"), "init")
    assert result.returncode == 0, result.stderr
    result = run_cas("--store", str(tmp_path / "s"), "put", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"blake3:{GOLDEN[1025]}  {path}\n"


def test_digest_does_not_depend_on_encoding(local_store: Store) -> None:
    compressible = b"a" * 100_000
    info = local_store.put_bytes(compressible)
    assert info.encoding == "zstd"
    assert info.digest == hash_bytes(compressible)
    random_like = vector_input(4096)
    assert local_store.put_bytes(random_like).digest == "blake3:" + GOLDEN[4096]


@pytest.mark.parametrize(
    "text",
    [
        "blake3:" + GOLDEN[0],
        GOLDEN[0],
        GOLDEN[0].upper(),
        "BLAKE3:" + GOLDEN[0],
        "  blake3:" + GOLDEN[0] + "\n",
    ],
)
def test_parse_accepts_canonical_and_bare_hex(text: str) -> None:
    assert parse_digest(text) == "blake3:" + GOLDEN[0]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "blake3:",
        GOLDEN[0][:-1],
        GOLDEN[0] + "0",
        "sha256:" + GOLDEN[0],
        "blake3:" + GOLDEN[0][:-1] + "g",
        "blake3-" + GOLDEN[0],
    ],
)
def test_parse_rejects_everything_else(text: str) -> None:
    with pytest.raises(InvalidDigest, match="invalid digest"):
        parse_digest(text)


def test_prefix_rules() -> None:
    assert parse_prefix("blake3:af1349b9") == "af1349b9"
    assert parse_prefix("AF1349B9F5") == "af1349b9f5"
    with pytest.raises(InvalidDigest, match="too short"):
        parse_prefix("af1349b")
    with pytest.raises(InvalidDigest, match="invalid digest 'af1349bz': expected hex"):
        parse_prefix("af1349bz")
    with pytest.raises(InvalidDigest, match="expected hex"):
        parse_prefix(GOLDEN[0] + "0")
    assert looks_like_digest("af1349b9")
    assert not looks_like_digest("release-1")
    assert not looks_like_digest("af13")
    # Anything spelt as a digest is one, never a tag name, even when it is not hex.
    assert looks_like_digest("blake3:release")
    assert looks_like_digest(" BLAKE3:x")


@pytest.mark.parametrize("length", [0, 1025, (1 << 20) + 7])
def test_hash_file_reads_in_pieces_to_the_same_digest(tmp_path: Path, length: int) -> None:
    path = tmp_path / "f"
    data = vector_input(length)
    path.write_bytes(data)
    assert hash_file(path) == (hash_bytes(data), length)
    if length in GOLDEN:
        assert hash_file(path)[0] == "blake3:" + GOLDEN[length]


def test_format_digest_is_the_canonical_form() -> None:
    assert format_digest(GOLDEN[1]) == "blake3:" + GOLDEN[1]
    assert parse_digest(format_digest(GOLDEN[1])) == format_digest(GOLDEN[1])
