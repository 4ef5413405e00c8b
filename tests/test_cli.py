"""The ``cas`` command as a user runs it: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casstore.cli.main import run
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.testing.store import corrupt, payload
from tests.helpers import run_cas


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with an embedded store, as after ``cas init``."""
    monkeypatch.chdir(tmp_path)
    assert run(["init"]) == 0
    return tmp_path


def cas(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_writes_config_and_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cas(capsys, "init")
    assert code == 0
    assert (tmp_path / "store.toml").is_file()
    assert (tmp_path / ".cas" / layout.MARKER).is_file()
    assert "initialized empty store" in out
    code, out, _ = cas(capsys, "init")
    assert (code, "already a store" in out) == (0, True)


def test_put_get_cat_stat_roundtrip(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = payload(300_000, compressible=True)
    (workdir / "a.bin").write_bytes(data)
    (workdir / "b.txt").write_bytes(b"hello\n")
    code, out, _ = cas(capsys, "put", "a.bin", "b.txt")
    assert code == 0
    da, db = hash_bytes(data), hash_bytes(b"hello\n")
    assert out == f"{da}  a.bin\n{db}  b.txt\n"

    code, out, _ = cas(capsys, "put", "--json", "b.txt")
    assert json.loads(out) == {"digest": db, "size": 6, "path": "b.txt"}

    assert cas(capsys, "get", da, "-o", "copy.bin")[0] == 0
    assert (workdir / "copy.bin").read_bytes() == data

    code, out, _ = cas(capsys, "stat", "--json", db[7:19])
    assert code == 0
    stat = json.loads(out)
    assert (stat["digest"], stat["size"], stat["encoding"]) == (db, 6, "raw")
    code, out, _ = cas(capsys, "stat", da)
    assert f"digest:       {da}" in out and "encoding:     zstd" in out

    code, out, _ = cas(capsys, "ls")
    assert out.split() == sorted([da, db])


def test_stdin_and_stdout_through_a_real_process(tmp_path: Path) -> None:
    assert run_cas("init", cwd=tmp_path).returncode == 0
    data = payload(200_000, seed=3)
    put = run_cas("put", "-", cwd=tmp_path, input=data)
    assert put.returncode == 0, put.stderr
    digest = hash_bytes(data)
    assert put.stdout.decode() == f"{digest}  -\n"
    got = run_cas("cat", digest, cwd=tmp_path)
    assert (got.returncode, got.stdout) == (0, data)
    got = run_cas("get", digest[:20], cwd=tmp_path)
    assert (got.returncode, got.stdout) == (0, data)


def test_has_exit_codes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "f").write_bytes(b"present")
    present = hash_bytes(b"present")
    absent = hash_bytes(b"absent")
    assert cas(capsys, "put", "f")[0] == 0
    assert cas(capsys, "has", present) == (0, "", "")
    code, out, _ = cas(capsys, "has", present, absent)
    assert (code, out) == (3, f"{absent}\n")
    code, out, _ = cas(capsys, "has", "--json", absent)
    assert (code, json.loads(out)) == (3, {"present": 0, "missing": [absent]})


def test_tags(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "f").write_bytes(b"x")
    digest = hash_bytes(b"x")
    cas(capsys, "put", "f")
    assert cas(capsys, "tag", "release-1", digest[7:20]) == (0, f"{digest}  release-1\n", "")
    assert cas(capsys, "tags")[1] == f"{digest}  release-1\n"
    assert json.loads(cas(capsys, "tags", "--json")[1]) == {"release-1": digest}
    assert cas(capsys, "cat", "release-1")[1] == "x"
    code, _, err = cas(capsys, "tag", "../escape", digest)
    assert code == 2 and "invalid tag name" in err
    assert not (workdir / ".cas" / "escape").exists()
    assert cas(capsys, "tag", "-d", "release-1")[0] == 0
    assert cas(capsys, "tags")[1] == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["get", "not-a-digest!"], 2, "neither a digest"),
        (["get", "abc123"], 2, "too short"),
        (["get", "blake3:" + "z" * 64], 2, "invalid digest"),
        (["get", "0123456789abcdef"], 3, "no object matches"),
        (["get", hash_bytes(b"nope")], 3, "not found"),
        (["cat", "no-such-tag"], 3, "no ref named no-such-tag"),
        (["manifest", "show", "run.json"], 3, "run.json: no such file, and no ref named run.json"),
        (["put", "missing-file"], 1, "missing-file"),
        (["frobnicate"], 2, "unknown command 'frobnicate'"),
        (["pt", "x"], 2, "did you mean 'put'?"),
        # An option's value is not a command, and the values it takes are named.
        (["get", hash_bytes(b"x"), "--format", "tar.bz2"], 2, "unknown --format value 'tar.bz2'"),
        (["get", hash_bytes(b"x"), "--format", "foo"], 2, "(one of dir, zip, tar, tar.gz,"),
        (["tag"], 2, "required"),
    ],
)
def test_errors_are_one_line_with_distinct_codes(
    workdir: Path, args: list[str], code: int, message: str
) -> None:
    result = run_cas(*args, cwd=workdir)
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert message in err
    assert err.startswith("cas: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_not_a_store_exits_1(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    result = run_cas("--store", str(tmp_path / "plain"), "ls")
    assert result.returncode == 1
    assert "not a casstore store" in result.stderr.decode()


def test_debug_shows_traceback(workdir: Path) -> None:
    result = run_cas("--debug", "get", hash_bytes(b"nope"), cwd=workdir)
    assert result.returncode == 3
    assert "Traceback" in result.stderr.decode()


def test_corruption_exits_4_and_leaves_destination_untouched(workdir: Path) -> None:
    from casstore.store.open import open_store

    for size in (1000, 70 << 20):  # in-memory and two-pass paths of cat
        data = payload(size, seed=size, compressible=True)
        src = workdir / f"in-{size}"
        src.write_bytes(data)
        assert run_cas("put", str(src), cwd=workdir).returncode == 0
        digest = hash_bytes(data)
        corrupt(open_store(str(workdir / ".cas")), digest, "flip")
        dest = workdir / f"dest-{size}"
        dest.write_bytes(b"keep me")
        refused = run_cas("get", digest, "-o", str(dest), cwd=workdir)
        assert refused.returncode == 1 and b"--force" in refused.stderr  # exists: not replaced
        for args in (["get", digest, "-o", str(dest), "--force"], ["cat", digest], ["get", digest]):
            result = run_cas(*args, cwd=workdir)
            assert result.returncode == 4, (args, result.stderr)
            assert result.stdout == b"", args
            assert "hashes to" in result.stderr.decode() or "corrupt" in result.stderr.decode()
        assert dest.read_bytes() == b"keep me"
        assert sorted(p.name for p in workdir.iterdir() if p.name.startswith(".dest")) == []
        result = run_cas("verify", digest, cwd=workdir)
        assert result.returncode == 4 and b"corrupt" in result.stdout


def test_help_and_version_import_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from casstore.cli.main import run\n"
        "for argv in (['--help'], ['--version'], ['put', '--help']):\n"
        "    try:\n"
        "        run(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('s3fs', 'fsspec', 'botocore', 'aiobotocore', 'msgspec',\n"
        "                       'zstandard') if m in sys.modules]\n"
        "sys.stderr.write('heavy=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "cas " in result.stdout  # the version and the help did print
    assert result.stderr.strip() == "heavy=", result.stderr


def test_help_documents_exit_codes() -> None:
    result = run_cas("--help")
    out = result.stdout.decode()
    assert result.returncode == 0
    for line in ("0  success", "2  usage error", "3  not found", "4  integrity failure"):
        assert line in out


#: A cas process whose checkout holds once its large file is reached (a marker file
#: says so), until the checkout is stopped: SIGTERM then arrives mid-checkout, always.
_HELD_CHECKOUT = """
import sys
from pathlib import Path
from casstore.cli.main import main
from casstore.trees import checkout, readahead

readahead.SMALL_FILE = 100
marker = Path(sys.argv[1])

def held(store, large, root, stop):
    marker.write_text("reached")
    stop.wait()

checkout._write_large = held
main(sys.argv[2:])
"""


def test_sigterm_mid_checkout_leaves_nothing_behind(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    for i in range(20):
        (snap / f"f{i}").write_bytes(b"x" * (i * 30))
    store = tmp_path / "store"
    assert run_cas("init", str(store)).returncode == 0
    tree = run_cas("--store", str(store), "put", "--tree", str(snap)).stdout.split()[0].decode()
    out, marker = tmp_path / "out", tmp_path / "reached"
    args = [str(marker), "--store", str(store), "get", tree, "-o", str(out / "copy")]
    out.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", _HELD_CHECKOUT, *args], stderr=subprocess.PIPE
    )
    while not marker.exists() and process.poll() is None:  # until it holds, mid-checkout
        time.sleep(0.01)
    (staging,) = out.iterdir()
    assert staging.name.startswith(".copy.tmp-")  # written in part, not yet in place
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)  # a bound only: a hang fails the test
    assert (process.returncode, stderr) == (128 + signal.SIGTERM, b"cas: terminated\n")
    assert list(out.iterdir()) == []
