"""A large binary file inside a snapshot, edited in the middle between initial and final.

Measures what the final snapshot adds to the store: with whole-file blobs it is
the whole file again; with content-defined chunks, about the edited region.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from benchmarks.workloads import folder_bytes

SIZE = 100 << 20
EDIT = 256 << 10


@dataclass
class LargeFileResult:
    size: int
    edited: int
    initial_stored: int
    #: What the final snapshot adds with content-defined chunks (casstore's way).
    increment: int
    #: What it would add with each file stored whole (casstore before chunking).
    whole_file_increment: int

    def line(self) -> str:
        return (
            f"{self.size >> 20} MiB binary file in a snapshot, {self.edited >> 10} KiB "
            f"rewritten in the middle: the final snapshot adds "
            f"{self.increment / 1e6:.2f} MB with chunks, "
            f"{self.whole_file_increment / 1e6:.2f} MB with whole files"
        )


def make_snapshots(workdir: Path) -> tuple[Path, Path]:
    """Two folders: a database-like binary file (pages, part repetitive) and a note."""
    initial, final = workdir / "initial", workdir / "final"
    for folder in (initial, final):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    pages = blake3(b"large-file-pages").digest(length=SIZE // 2)
    # Half random pages, half zero padding in each 8 KiB page, like a database file.
    data = bytearray()
    for offset in range(0, SIZE // 2, 4096):
        data += pages[offset : offset + 4096] + bytes(4096)
    (initial / "db.sqlite").write_bytes(data)
    middle = SIZE // 2
    data[middle : middle + EDIT] = blake3(b"the edit").digest(length=EDIT)
    (final / "db.sqlite").write_bytes(data)
    for folder in (initial, final):
        (folder / "notes.txt").write_text("a snapshot with a database\n")
    return initial, final


def run(workdir: Path) -> LargeFileResult:
    import casstore.store.batch as store_module
    from casstore.store.open import init_store

    workdir.mkdir(parents=True, exist_ok=True)
    initial, final = make_snapshots(workdir)

    def increments(folder: str) -> tuple[int, int]:
        shutil.rmtree(workdir / folder, ignore_errors=True)
        store, _ = init_store(str(workdir / folder))
        store.put_tree(initial)
        first = folder_bytes(workdir / folder)
        store.put_tree(final)
        return first, folder_bytes(workdir / folder) - first

    first, chunked = increments("chunked")
    saved = store_module.CHUNKED_MIN
    store_module.CHUNKED_MIN = 1 << 62  # every file whole, as before chunking
    try:
        _, whole = increments("whole")
    finally:
        store_module.CHUNKED_MIN = saved
    return LargeFileResult(SIZE, EDIT, first, chunked, whole)
