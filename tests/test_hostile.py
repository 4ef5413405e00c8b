"""Hostile inputs, each a regression test: a one-line error with a distinct exit code, no
traceback, and peak memory bounded. Every command runs in its own process under an
address-space limit, so an unbounded allocation fails here instead of on a user's box."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import resource
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from tests.helpers import MEASURE

BLOCK = 512
GB = 1 << 30
#: The address space each command may use: far above its needs, far below the machine's.
ADDRESS_SPACE = 3 * GB
#: What a hostile input may add to a command's peak RSS (the issue's bound).
EXTRA_RSS_KIB = 256 << 10


def _octal(n: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, n)


def tar_header(name: str, *, size: int | bytes = 0, typeflag: bytes = b"0") -> bytes:
    """A ustar header; ``size`` may be the raw 12 bytes of the field (base-256)."""
    block = bytearray(BLOCK)
    block[0:100] = name.encode()[:100].ljust(100, b"\0")
    block[100:108] = _octal(0o644, 8)
    block[108:124] = _octal(0, 8) * 2
    block[124:136] = size if isinstance(size, bytes) else _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:265] = b"ustar\x0000"
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def tar_member(name: str, data: bytes = b"", typeflag: bytes = b"0") -> bytes:
    return tar_header(name, size=len(data), typeflag=typeflag) + data + bytes(-len(data) % BLOCK)


def pax(records: bytes) -> bytes:
    return tar_member("PaxHeader", records, b"x")


END = bytes(2 * BLOCK)
BENIGN = tar_member("hello.txt", b"hello\n")


def zip_with(name: str, data: bytes, *, method: int = zipfile.ZIP_DEFLATED, flags: int = 0,
             symlink: bool = False, crc: int | None = None) -> bytes:  # fmt: skip
    """A one-member zip written by hand: any method, flag or CRC, true or not."""
    payload = zlib.compress(data)[2:-4] if method == zipfile.ZIP_DEFLATED else data
    crc = zlib.crc32(data) if crc is None else crc
    raw = name.encode()
    local = struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0, crc, len(payload), len(data),
        len(raw), 0,
    ) + raw + payload  # fmt: skip
    attr = (0o120777 << 16) if symlink else (0o100644 << 16)
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", (3 << 8) | 20, 20, flags, method, 0, 0, crc,
        len(payload), len(data), len(raw), 0, 0, 0, 0, attr, 0,
    ) + raw  # fmt: skip
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0
    )  # fmt: skip
    return local + central + end


def bundle_with(first_size: int, content: bytes = b"") -> bytes:
    inner = tar_header("casstore-bundle.json", size=first_size) + content
    return zstandard.ZstdCompressor().compress(inner)


def deep_manifest(depth: int) -> bytes:
    return (
        b'{"casstore":"run-manifest","schema_version":"1.0","x":'
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )


def big_tree(entries: int, path_bytes: int = 0) -> bytes:
    digest = "blake3:" + "0" * 64
    if path_bytes:
        rows = [f'{{"path":"{"a" * path_bytes}","type":"file","size":0,"digest":"{digest}"}}']
    else:
        rows = [
            f'{{"path":"{i:x}","type":"file","size":0,"digest":"{digest}"}}' for i in range(entries)
        ]
    return ('{"casstore":"tree/1","entries":[' + ",".join(rows) + "]}").encode()


# name -> (the file's bytes, the cas arguments after the store, exit code, words of the error)
Case = tuple[Callable[[], bytes], list[str], int, str]
ARCHIVES: dict[str, Case] = {
    "gnu long name claims 1.5 GB.tar": (
        lambda: tar_header("././@LongLink", size=1_500_000_000, typeflag=b"L") + bytes(BLOCK),
        ["tree", "{file}"],
        1,
        "long name or PAX data",
    ),
    "gnu long name claims 1.5 GB.tar.gz": (
        lambda: gzip.compress(
            tar_header("././@LongLink", size=1_500_000_000, typeflag=b"L") + bytes(BLOCK), mtime=0
        ),
        ["put", "--tree", "{file}"],
        1,
        "long name or PAX data",
    ),
    "gnu long link claims 1.5 GB.tar.zst": (
        lambda: zstandard.ZstdCompressor().compress(
            tar_header("././@LongLink", size=1_500_000_000, typeflag=b"K") + bytes(BLOCK)
        ),
        ["put", "--tree", "{file}"],
        1,
        "long name or PAX data",
    ),
    "pax size=abc.tar": (
        lambda: pax(b"13 size=abcd\n") + BENIGN + END,
        ["tree", "{file}"],
        1,
        "PAX size that is not a number",
    ),
    "pax header claims 2 GB.tar": (
        lambda: tar_header("PaxHeader", size=2_000_000_000, typeflag=b"x") + bytes(BLOCK),
        ["tree", "{file}"],
        1,
        "long name or PAX data",
    ),
    "base-256 size of 0xff bytes.tar": (
        lambda: tar_header("f", size=b"\xff" * 12) + END,
        ["tree", "{file}"],
        1,
        "negative size",
    ),
    "base-256 size of 2**88.tar": (
        lambda: tar_header("f", size=b"\x80" + b"\xff" * 11) + END,
        ["tree", "{file}"],
        1,
        "decompression bomb",
    ),
    "corrupt.tar.xz": (
        lambda: lzma.compress(BENIGN + END)[:40] + b"\x00" * 40,
        ["tree", "{file}"],
        1,
        "corrupt archive",
    ),
    "encrypted member.zip": (
        lambda: zip_with("secret.txt", b"data", flags=1),
        ["tree", "{file}"],
        1,
        "encrypted",
    ),
    "deflate64 member.zip": (
        lambda: zip_with("x.txt", b"data", method=9),
        ["tree", "{file}"],
        1,
        "compression method 9",
    ),
    "bzip2 member.zip": (
        lambda: zip_with("x.txt", b"data", method=zipfile.ZIP_BZIP2),
        ["put", "--tree", "{file}"],
        1,
        "compression method 12",
    ),
    "symlink with a bad crc.zip": (
        lambda: zip_with("link", b"target", symlink=True, crc=1),
        ["tree", "{file}"],
        1,
        "corrupt in the zip",
    ),
    "symlink target of 4 MB.zip": (
        lambda: zip_with("link", bytes(4 << 20), symlink=True),
        ["tree", "{file}"],
        1,
        "symlink target of 4194304 bytes",
    ),
    "bundle header claims 3 GB.casb": (
        lambda: bundle_with(3 * GB),
        ["unbundle", "{file}"],
        4,
        "claims 3221225472 bytes",
    ),
    "bundle header nested 200,000 deep.casb": (
        lambda: bundle_with(400_002, (b"[" * 200_001 + b"]" * 200_001).ljust(400_384, b"\0")),
        ["unbundle", "{file}"],
        4,
        "malformed",
    ),
}


def run_limited(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """Run ``cas args`` in a process limited to ADDRESS_SPACE: exit code, stderr, peak RSS."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    lines = done.stderr.splitlines()
    peak = [int(ln.split("=")[1]) for ln in lines if ln.startswith("maxrss_kib=")]
    assert peak, done.stderr[-3000:]
    message = "\n".join(ln for ln in lines if ln and not ln.startswith("maxrss_kib=")).strip()
    return done.returncode, message, peak[-1]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> int:
    """The peak RSS of the same kind of command on a benign input."""
    folder = tmp_path_factory.mktemp("benign")
    (folder / "benign.tar").write_bytes(BENIGN + END)
    code, message, peak = run_limited(["tree", str(folder / "benign.tar")], folder)
    assert code == 0, message
    return peak


def _check(code: int, message: str, peak: int, baseline: int, exit_code: int, words: str) -> None:
    assert code == exit_code, message
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    assert message.startswith("cas: ") and words in message, message
    assert peak - baseline < EXTRA_RSS_KIB, f"peak RSS {peak} KiB, baseline {baseline} KiB"


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_hostile_archives_and_bundles(name: str, tmp_path: Path, baseline: int) -> None:
    make, args, exit_code, words = ARCHIVES[name]
    path = tmp_path / name.replace(" ", "_")
    path.write_bytes(make())
    store = tmp_path / "store"
    assert run_limited(["init", str(store)], tmp_path)[0] == 0
    argv = ["--store", str(store), *[a.replace("{file}", str(path)) for a in args]]
    _check(*run_limited(argv, tmp_path), baseline, exit_code, words)
    stored = [p for folder in ("objects", "packs") for p in (store / folder).rglob("*")]
    assert not [p for p in stored if p.is_file()]  # nothing was stored


CONFIGS = {
    "a size beyond any disk": ('[tree]\nmax_bytes = "999999999999999999TiB"\n', "too large a size"),
    "a 2 MB store.toml": ("# " + "x" * (2 << 20) + "\n", "at most 1048576"),
    "arrays nested 5,000 deep": ("a = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML"),
    "a NUL in the store's url": ('[store]\nurl = "a\\u0000b"\n', "NUL byte"),
    "no entries allowed": ("[tree]\nmax_entries = 0\n", "max_entries must be 1 or more"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hostile_configs(name: str, tmp_path: Path, baseline: int) -> None:
    text, words = CONFIGS[name]
    (tmp_path / "store.toml").write_text(text)
    _check(*run_limited(["ls"], tmp_path), baseline, 1, words)


RECORDS: dict[str, tuple[Callable[[], bytes], list[str], int, str]] = {
    "a tree of 260,000 entries": (
        lambda: big_tree(260_000),
        ["verify", "{digest}"],
        1,
        "more than 250000 entries",
    ),
    "a tree record of 40 MB (one path)": (
        lambda: big_tree(1, path_bytes=40 << 20),
        ["get", "{digest}", "-o", "{out}"],
        1,
        "more than [tree] max_record_bytes",
    ),
    "a run manifest nested 200,000 deep": (
        lambda: deep_manifest(200_000),
        ["manifest", "show", "{digest}"],
        1,
        "malformed record",
    ),
    "a 40 MB run manifest": (
        lambda: (
            b'{"casstore":"run-manifest","schema_version":"1.0","x":"' + b"a" * (40 << 20) + b'"}'
        ),
        ["verify", "{digest}"],
        1,
        "more than [tree] max_record_bytes",
    ),
}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_hostile_records(name: str, tmp_path: Path, baseline: int) -> None:
    make, args, exit_code, words = RECORDS[name]
    store = tmp_path / "store"
    assert run_limited(["init", str(store)], tmp_path)[0] == 0
    (tmp_path / "record").write_bytes(make())
    put = subprocess.run(
        [sys.executable, "-m", "casstore", "--store", str(store), "put", str(tmp_path / "record")],
        capture_output=True,
        text=True,
        check=True,
    )
    digest = put.stdout.split()[0]
    argv = [a.format(digest=digest, out=tmp_path / "out") for a in args]
    _check(*run_limited(["--store", str(store), *argv], tmp_path), baseline, exit_code, words)


def test_the_limits_move_with_the_config(tmp_path: Path) -> None:
    """[tree] max_entries is the user's: a snapshot over it is refused when building, and
    allowed once raised."""
    members = b"".join(tar_member(f"f{i}", b"x") for i in range(60)) + END
    (tmp_path / "many.tar").write_bytes(members)
    (tmp_path / "store.toml").write_text("[tree]\nmax_entries = 50\n")
    code, message, _ = run_limited(["tree", "many.tar"], tmp_path)
    assert code == 1 and "more than 50 entries ([tree] max_entries)" in message
    (tmp_path / "store.toml").write_text("[tree]\nmax_entries = 60\n")
    assert run_limited(["tree", "many.tar"], tmp_path)[0] == 0
    with tarfile.open(tmp_path / "many.tar") as t:
        assert len(t.getmembers()) == 60


def test_a_blob_that_looks_like_a_tree_is_fetched_as_a_file(tmp_path: Path) -> None:
    """Over the record bound, an object starting like a tree is a plain blob: fetched as
    bytes, in bounded memory, not parsed."""
    from casstore.format.records import MAX_RECORD_BYTES

    store = tmp_path / "store"
    assert run_limited(["init", str(store)], tmp_path)[0] == 0
    head = b'{"casstore":"tree/1","entries":['
    size = MAX_RECORD_BYTES + 1
    data = io.BytesIO(head + b" " * (size - len(head)))
    put = subprocess.run(
        [sys.executable, "-m", "casstore", "--store", str(store), "put", "-"],
        input=data.getvalue(),
        capture_output=True,
        check=True,
    )
    digest = put.stdout.split()[0].decode()
    code, message, peak = run_limited(
        ["--store", str(store), "get", digest, "-o", str(tmp_path / "out")], tmp_path
    )
    assert code == 0, message
    assert (tmp_path / "out").stat().st_size == size
    assert peak < 256 << 10, f"{peak} KiB"
