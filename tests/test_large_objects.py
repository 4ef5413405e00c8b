"""A 10 GiB object is put and got with bounded memory (peak RSS under 256 MiB)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from blake3 import blake3

from casstore.store.open import init_store
from tests.helpers import MEASURE, run_measured

SIZE = 10 << 30
BLOCK = 1 << 20
RSS_LIMIT_KIB = 256 << 10


def blocks() -> tuple[bytes, int]:
    """A seeded base block (each copy is varied by a counter) and how many to send."""
    rng = random.Random(10)
    return bytes(rng.choices(b"abcdefghijklmnop", k=BLOCK)), SIZE // BLOCK


def test_ten_gib_put_and_get_in_bounded_memory(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    base, count = blocks()
    hasher = blake3()
    writer = subprocess.Popen(
        [sys.executable, "-c", MEASURE, "--store", store.url, "put", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=False,
    )
    assert writer.stdin is not None
    for i in range(count):
        block = i.to_bytes(8, "little") + base[8:]
        hasher.update(block)
        writer.stdin.write(block)
    out, err = writer.communicate(timeout=600)
    digest = "blake3:" + hasher.hexdigest()
    assert writer.returncode == 0, err
    assert out.decode() == f"{digest}  -\n"
    put_rss = int(err.decode().rsplit("maxrss_kib=", 1)[1])
    print(f"peak RSS put={put_rss} KiB", end=" ")
    assert put_rss < RSS_LIMIT_KIB, f"put peak RSS {put_rss} KiB"
    assert store.stat(digest).size == SIZE

    with open(os.devnull, "wb") as devnull:
        code, cat_rss = run_measured(["--store", store.url, "cat", digest], stdout=devnull)
    assert code == 0
    assert cat_rss < RSS_LIMIT_KIB, f"cat peak RSS {cat_rss} KiB"

    dest = tmp_path / "out.bin"
    code, get_rss = run_measured(["--store", store.url, "get", digest, "-o", str(dest)])
    assert code == 0
    assert get_rss < RSS_LIMIT_KIB, f"get peak RSS {get_rss} KiB"
    print(f"cat={cat_rss} KiB get={get_rss} KiB stored={store.stat(digest).stored_size} B")
    assert dest.stat().st_size == SIZE
    # Every byte, not just the size: the file's own BLAKE3 is the digest.
    assert "blake3:" + blake3(max_threads=blake3.AUTO).update_mmap(dest).hexdigest() == digest
    dest.unlink()
