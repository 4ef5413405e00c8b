"""Messages a user understands: each case a user met, and what cas now says."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from blake3 import blake3

from casstore.cli.main import run
from casstore.store.open import init_store
from tests.helpers import BUCKET, ROOT, make_inputs, run_cas, run_example
from tests.s3_server import S3Server


def _cas(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_put_of_a_folder_says_to_use_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = init_store(str(tmp_path / "s"))
    (tmp_path / "snap").mkdir()
    code, _, err = _cas(capsys, "--store", store.url, "put", str(tmp_path / "snap"))
    assert code == 2 and f"cas put --tree {tmp_path / 'snap'}" in err


def test_read_only_refusals_name_the_operation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = init_store(str(tmp_path / "s"))
    digest = store.put_bytes(b"x").digest
    (tmp_path / "f").write_bytes(b"new")
    code, _, err = _cas(capsys, "--store", store.url, "--read-only", "put", str(tmp_path / "f"))
    assert code == 1 and "refusing to put" in err and "objects/" not in err
    code, _, err = _cas(capsys, "--store", store.url, "--read-only", "tag", "t", digest)
    assert code == 1 and "refusing to set tags/t" in err


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "s"))
    store.put_many([b"%d" % i for i in range(3000)])
    big = store.put_bytes(bytes(range(256)) * 40_000).digest
    for command in ("ls", f"cat {big}"):
        shell = (
            f"{sys.executable} -m casstore --store {store.url} {command} | head -c 10 >/dev/null;"
            " echo ${PIPESTATUS[0]}"
        )
        done = subprocess.run(
            ["bash", "-c", shell],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        assert done.stdout.strip() == "0", (command, done.stderr)
        assert done.stderr == "", command


def test_verify_of_a_role_the_run_lacks_names_its_roles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = init_store(str(tmp_path / "s"))
    inputs = make_inputs(tmp_path / "in")
    done = run_example(tmp_path, inputs, tmp_path / "o" / "t.json", env={"CAS_STORE": store.url})
    digest = done.stdout.strip().splitlines()[-1]
    code, _, err = _cas(
        capsys, "--store", store.url, "verify", digest, "--snapshot", f"baseline={inputs}/env.zip"
    )
    assert code == 2 and "'baseline'" in err and "initial, final" in err
    code, _, err = _cas(capsys, "--store", store.url, "verify", digest, "--artifact", "x=/dev/null")
    assert code == 2 and "no artifact 'x'" in err


def test_sizes_in_store_toml(tmp_path: Path) -> None:
    store = tmp_path / "s"
    init_store(str(store))
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "f").write_bytes(b"x" * 2000)
    (tmp_path / "store.toml").write_text(f'[store]\nurl = "{store}"\n[tree]\nmax_bytes = 1000\n')
    done = run_cas("put", "--tree", str(snap), cwd=tmp_path)
    assert done.returncode == 1 and b"raise [tree] max_bytes in store.toml" in done.stderr
    (tmp_path / "store.toml").write_text(f'[store]\nurl = "{store}"\n[tree]\nmax_bytes = 100000\n')
    assert run_cas("put", "--tree", str(snap), cwd=tmp_path).returncode == 0
    (tmp_path / "store.toml").write_text(f'[store]\nurl = "{store}"\n[tree]\nmax_bytes = "lots"\n')
    done = run_cas("put", "--tree", str(snap), cwd=tmp_path)
    assert done.returncode == 1 and b"[tree] max_bytes" in done.stderr
    assert b"Traceback" not in done.stderr


def test_stat_and_manifest_show_say_what_a_snapshot_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = init_store(str(tmp_path / "s"))
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "big.bin").write_bytes(blake3(b"big").digest(length=10_240_000))
    (snap / "a.txt").write_text("a\n")
    tree = store.put_tree(snap).digest
    out = _cas(capsys, "--store", store.url, "stat", tree)[1]
    assert "kind:         tree with 2 files" in out and "holds:        2 files, 9.8 MiB" in out
    entries = json.loads(store.get_bytes(tree))["entries"]
    big = next(e["digest"] for e in entries if e["path"] == "big.bin")
    out = _cas(capsys, "--store", store.url, "stat", big)[1]
    assert "chunked file with" in out
    stored = int(next(line for line in out.splitlines() if "stored size" in line).split()[2])
    assert stored > 1_000_000  # its chunks counted, not only the list
    inputs = make_inputs(tmp_path / "in")
    done = run_example(tmp_path, inputs, tmp_path / "o" / "t.json", env={"CAS_STORE": store.url})
    digest = done.stdout.strip().splitlines()[-1]
    out = _cas(capsys, "--store", store.url, "manifest", "show", digest)[1]
    line = next(line for line in out.splitlines() if "initial_snapshot" in line)
    assert "44 files, 1.6 MiB" in line and "tree record" not in line


def test_a_missing_bucket_is_named_and_can_be_created(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    code, _, err = _cas(capsys, "--store", f"s3://{bucket}/x", "init")
    assert code == 1 and f"the bucket '{bucket}' does not exist" in err
    assert "--create-bucket" in err and "Traceback" not in err
    code, out, _ = _cas(capsys, "--store", f"s3://{bucket}/x", "init", "--create-bucket")
    assert code == 0 and "initialized empty store" in out
    assert _cas(capsys, "--store", f"s3://{bucket}/x", "ls")[0] == 0
    assert bucket != BUCKET


def test_archive_names_get_cannot_write_are_refused_not_made_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = init_store(str(tmp_path / "s"))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"hi")
    tree = store.put_tree(tmp_path / "d").digest
    for name in ("x.tar.bz2", "x.TXZ"):
        code, _, err = _cas(capsys, "--store", store.url, "get", tree, "-o", str(tmp_path / name))
        assert code == 1 and "bzip2 and xz archives are read, not written" in err
        assert not (tmp_path / name).exists()
