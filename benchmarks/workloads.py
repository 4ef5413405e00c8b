"""Seeded, generated workloads: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

from blake3 import blake3

_LETTERS = b"etaoinshrdlucmfwypvbgkjqxz"


def _vocabulary(seed: bytes, count: int) -> list[bytes]:
    stream = blake3(seed + b"/vocabulary").digest(length=count * 10)
    words = []
    for i in range(count):
        chunk = stream[i * 10 : i * 10 + 10]
        length = 2 + chunk[0] % 9
        # Skewed towards frequent letters, like text.
        words.append(bytes(_LETTERS[(b * b) % 256 * len(_LETTERS) // 256] for b in chunk[1:length]))
    return words


def text_block(size: int, seed: bytes) -> bytes:
    """Text-like bytes (words, punctuation, numbers) that zstd-3 compresses to about a third."""
    words = _vocabulary(seed, 8192)
    picks = blake3(seed + b"/picks").digest(length=size // 2)
    out = bytearray()
    i = 0
    while len(out) < size:
        index = int.from_bytes(picks[i : i + 2], "little") % len(words)
        out += words[index]
        sep = picks[i] % 17
        out += b"\n" if sep == 0 else b", " if sep == 1 else b" %d " % index if sep == 2 else b" "
        i = (i + 2) % (len(picks) - 2)
    return bytes(out[:size])


def compressible_file(path: Path, size: int, *, seed: bytes = b"casstore-bench") -> Path:
    """Write ``size`` bytes of text-like content to ``path`` (reused when already there)."""
    if path.exists() and path.stat().st_size == size:
        return path
    block = text_block(min(size, 32 << 20), seed)
    written = 0
    with open(path, "wb") as f:
        variant = 0
        while written < size:
            # A different letter mapping per block, so no block repeats another.
            shift = bytes((b + variant) % 256 if 97 <= b <= 122 else b for b in range(256))
            table = bytes(97 + (s - 97) % 26 if 97 <= b <= 122 else b for b, s in enumerate(shift))
            piece = block.translate(table)[: size - written]
            f.write(piece)
            written += len(piece)
            variant += 1
    return path


def folder_bytes(path: Path) -> int:
    """Bytes in the files below ``path``: a store's or a repository's size on disk."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
