"""What an adversarial pass found, each now a regression test: leftovers of killed
writers, refs naming missing objects, a full disk, a silent S3 endpoint, modes that
follow the umask, output that names cannot forge."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from casstore.cli.main import run
from casstore.errors import BackendError
from casstore.fileio import TEMP_MARK
from casstore.format import layout
from casstore.maintenance.fsck import fsck
from casstore.maintenance.gc import collect
from casstore.store.objects import Store
from tests.helpers import run_cas

DAY = 24 * 3600


def _leftover(folder: Path, name: str, age: float, size: int = 1000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"x" * size)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_temp_files_of_killed_writers_are_reported_by_fsck_and_removed_by_gc(
    local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(local_store.url)
    digest = local_store.put_bytes(b"kept").digest
    local_store.tag("kept", digest)
    old_pack = _leftover(root / layout.TMP, f"{TEMP_MARK}pack-abc", 2 * DAY, 62_000)
    old_ref = _leftover(root / "refs" / "tags", f".x{TEMP_MARK}123", 2 * DAY)
    fresh = _leftover(root / layout.TMP, f"{TEMP_MARK}in-flight", 60)
    not_ours = _leftover(root / layout.TMP, "notes.txt", 2 * DAY)

    result = fsck(local_store)
    assert sorted(item["key"] for item in result.leftovers) == [
        f"refs/tags/.x{TEMP_MARK}123",
        f"tmp/{TEMP_MARK}pack-abc",
    ]
    assert run(["--store", local_store.url, "fsck"]) == 0  # reported, not an error
    out = capsys.readouterr().out
    assert "leftover  2 temp files of interrupted writers" in out and "cas gc" in out

    dry = collect(local_store, grace=3600, dry_run=True)
    assert (dry.leftovers, dry.leftover_bytes) == (2, 63_000) and old_pack.exists()
    assert run(["--store", local_store.url, "gc", "--grace", "1h"]) == 0
    assert "removed: 2 temp files of interrupted writers" in capsys.readouterr().out
    assert not old_pack.exists() and not old_ref.exists()
    assert fresh.exists() and not_ours.exists()  # a live writer's, and not a temp file
    assert local_store.get_bytes(digest) == b"kept"


def test_incomplete_multipart_uploads_are_aborted_by_gc(store: Store) -> None:
    if not store.url.startswith("s3://"):
        pytest.skip("multipart uploads are S3's")
    import botocore.session

    backend: Any = store.backend
    bucket, key = backend._split("objects/ab/killed-upload")
    # Started by another client, as a writer killed mid-upload would have left it.
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"]
    )
    client.create_multipart_upload(Bucket=bucket, Key=key)
    found = backend.leftovers(time.time() + 5)
    assert [info.key.partition("?")[0] for info in found] == ["objects/ab/killed-upload"]
    assert backend.leftovers(time.time() - 3600) == []  # younger than the grace period
    result = collect(store, grace=0)
    assert result.leftovers == 1
    assert backend.leftovers(time.time() + 5) == []


def test_fsck_reports_refs_naming_missing_objects(
    local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = local_store.put_bytes(b"soon gone" * 100_000).digest  # loose, over a pack's limit
    local_store.tag("release", digest)
    local_store.claim_ref("runs", "r1", digest)
    os.chmod(Path(local_store.url, layout.object_key(digest)), 0o644)
    local_store.backend.delete(layout.object_key(digest))
    assert fsck(local_store).broken_refs == {"tags/release": digest, "runs/r1": digest}
    assert run(["--store", local_store.url, "fsck"]) == 3
    out = capsys.readouterr().out
    assert f"missing   tags/release names {digest}" in out and "runs/r1" in out


# -- a full disk -------------------------------------------------------------------


class _FillingFile:
    """A temp file on a disk with ``room`` bytes left."""

    def __init__(self, inner: Any, room: list[int]) -> None:
        self._inner, self._room = inner, room

    def write(self, data: bytes) -> int:
        if len(data) > self._room[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room[0] -= len(data)
        return int(self._inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_full_disk_is_reported_as_a_full_disk(
    tmp_path: Path, local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from casstore.store import packs

    folder = tmp_path / "snapshot"
    folder.mkdir()
    for i in range(3000):  # incompressible: several packs' worth
        (folder / f"f{i:04}.bin").write_bytes(os.urandom(20_000))
    room = [40 << 20]
    real = tempfile.NamedTemporaryFile

    def filling(*args: Any, **kwargs: Any) -> Any:
        return _FillingFile(real(*args, **kwargs), room)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", filling)
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 16 << 20)
    with pytest.raises(BackendError) as raised:
        local_store.put_tree(folder)
    message = str(raised.value)
    assert os.strerror(errno.ENOSPC) in message and "corrupt" not in message
    assert any("cas gc" in note for note in raised.value.__notes__)  # a pack was published
    monkeypatch.undo()
    assert list(Path(local_store.url, layout.TMP).iterdir()) == []  # no temp pack left


# -- a silent S3 endpoint ----------------------------------------------------------


@pytest.fixture
def silent_endpoint() -> Iterator[int]:
    """A listener that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_silent_s3_endpoint_is_an_error_not_a_hang(tmp_path: Path, silent_endpoint: int) -> None:
    (tmp_path / "store.toml").write_text(
        f'[s3]\nendpoint_url = "http://127.0.0.1:{silent_endpoint}"\n'
        "connect_timeout = 1\nread_timeout = 1\nretries = 1\n"
    )
    done = run_cas(
        "--store",
        "s3://b/x",
        "ls",
        cwd=tmp_path,
        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
    )
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "did not answer in time" in err and "read_timeout 1" in err and "retries 1" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_s3_timeouts_are_checked_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "store.toml").write_text("[s3]\nread_timeout = 0\n")
    done = run_cas("--store", str(tmp_path / "s"), "ls", cwd=tmp_path)
    assert done.returncode == 1 and b"timeouts must be positive" in done.stderr


# -- modes follow the umask ----------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_store_files_and_outputs_follow_the_umask(tmp_path: Path) -> None:
    """A group sharing a store (umask 002): every file it writes is group-writable, but
    objects, packs and indexes, which never change, are read-only as git's are."""
    (tmp_path / "big.bin").write_bytes(os.urandom(3 << 20))
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "a.txt").write_text("a")
    cas = f"{sys.executable} -m casstore --store store"
    script = f"""
        set -e
        umask 002
        {cas} init
        big=$({cas} put big.bin | cut -d' ' -f1)
        tree=$({cas} put --tree snap | cut -d' ' -f1)
        {cas} tag t "$big"
        {cas} get "$big" -o out.bin
        {cas} get "$tree" -o co
    """
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    store = tmp_path / "store"
    stored = [p for p in store.rglob("*") if p.is_file()]
    immutable = [
        p for p in stored if p.relative_to(store).parts[0] in ("objects", "packs", "index")
    ]
    assert len(immutable) >= 3 and {mode(p) for p in immutable} == {0o444}
    assert mode(store / "refs" / "tags" / "t") == 0o664
    assert mode(store / "casstore.json") == 0o664
    assert mode(tmp_path / "out.bin") == 0o664
    assert mode(tmp_path / "co" / "a.txt") == 0o664
    assert mode(tmp_path / "co") == 0o775


# -- output that cannot be forged -------------------------------------------------------


def test_names_in_text_output_are_escaped(
    tmp_path: Path, local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "x\n+ forged.txt").write_text("new")
    (b / "bell\x07\x1b[31m").write_text("new")
    assert run(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "\n+ forged.txt" not in out and "x\\n+ forged.txt" in out
    assert "\x1b" not in out and "\x07" not in out


def test_zips_written_hold_only_names_extractors_take_safely(
    tmp_path: Path, local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "..\\..\\evil.txt").write_text("x")
    tree = local_store.put_tree(folder).digest
    code = run(["--store", local_store.url, "get", tree, "-o", str(tmp_path / "x.zip")])
    assert code == 1
    err = capsys.readouterr().err
    assert "backslash" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.zip").exists()
    (folder / "..\\..\\evil.txt").rename(folder / "C:evil.txt")
    tree = local_store.put_tree(folder).digest
    assert run(["--store", local_store.url, "get", tree, "-o", str(tmp_path / "y.zip")]) == 1
    assert "drive" in capsys.readouterr().err
    # Tar keeps POSIX names as they are: a backslash is an ordinary character there.
    assert run(["--store", local_store.url, "get", tree, "-o", str(tmp_path / "x.tar")]) == 0
