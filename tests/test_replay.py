"""Verify by role, check local files against a run, replay, fetch for grading, bundles."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard

import casstore
from casstore import IntegrityError, RunManifest, Store
from casstore.cli.main import run
from casstore.graph.closure import walk
from casstore.store.open import init_store
from runner_hooks import RunRecorder, fetch_for_grading
from tests.helpers import TOKEN, flip_stored_byte, make_inputs


@pytest.fixture
def recorded(tmp_path: Path, local_store: Store) -> tuple[str, RunManifest, Path]:
    """A run recorded into ``local_store``: its digest, manifest, and the inputs' folder."""
    inputs = make_inputs(tmp_path / "inputs")
    out = tmp_path / "run"
    out.mkdir()
    final = out / "final"
    with zipfile.ZipFile(inputs / "env.zip") as z:
        z.extractall(final)
    (final / "reports" / "q3.csv").write_text("item,amount\nrevenue,1200\ncost,800\ntotal,400\n")
    (out / "trajectory.json").write_text(json.dumps({"messages": ["done"]}))
    with RunRecorder(
        store=local_store,
        trajectory_id="t1",
        agent_config=inputs / "agent_config.json",
        orchestrator_model="fake/echo-1",
        orchestrator_extra_args={"temperature": 0, "seed": 5, "api_key": TOKEN},
        initial_messages=inputs / "messages.json",
        seed=5,
        deterministic=True,
        code_root=tmp_path,
        runner="examples/simple_runner.py",
        argv=[
            sys.executable,
            str(tmp_path / "examples" / "simple_runner.py"),  # in the code's checkout
            "--agent-config",
            str(inputs / "agent_config.json"),
            "--initial-messages",
            str(inputs / "messages.json"),
            "--orchestrator-model",
            "fake/echo-1",
            "--api-key",
            TOKEN,
            "--seed",
            "5",
            "--deterministic",
        ],
    ) as recorder:
        recorder.attach_snapshot("initial", inputs / "env.zip")
        recorder.attach_mcp_config(inputs / "mcp.json")
        recorder.attach_snapshot("final", final)
        digest = recorder.finish(out / "trajectory.json")
    assert recorder.manifest is not None
    return digest, recorder.manifest, tmp_path


def _verify_json(store: Store, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = run(["--store", store.url, "verify", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


# -- cas verify --------------------------------------------------------------------


def test_verify_reports_every_role_ok(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest, manifest, _ = recorded
    code, report = _verify_json(local_store, digest, capsys=capsys)
    assert code == 0 and report["status"] == "ok" and report["kind"] == "run-manifest"
    roles = {r["role"]: r for r in report["roles"]}
    assert set(roles) == {"manifest", *manifest.roles()}
    assert roles["initial_snapshot"]["objects"] == 1 + 44  # the tree and its files
    assert run(["--store", local_store.url, "verify", digest]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{digest} (run manifest): ok")
    assert "  final_snapshot:" in text


def test_verify_names_the_corrupt_role_and_exits_4(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest, manifest, _ = recorded
    assert manifest.trajectory is not None
    flip_stored_byte(local_store, manifest.trajectory.digest)
    code, report = _verify_json(local_store, digest, capsys=capsys)
    assert code == 4 and report["status"] == "corrupt"
    bad = {r["role"] for r in report["roles"] if r["status"] != "ok"}
    assert bad == {"trajectory"}
    assert run(["--store", local_store.url, "verify", digest]) == 4
    assert "trajectory:" in capsys.readouterr().out


def test_verify_counts_missing_objects_by_role(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest, manifest, _ = recorded
    assert manifest.final_snapshot is not None and manifest.initial_snapshot is not None
    partial, _ = init_store(str(tmp_path / "partial"))
    final_only = set(walk(local_store, [manifest.final_snapshot.digest]).order) - set(
        walk(local_store, [manifest.initial_snapshot.digest]).order
    )
    assert final_only and manifest.final_snapshot.digest in final_only
    skipped = sorted(final_only - {manifest.final_snapshot.digest})
    for each in walk(local_store, [digest]).order:
        if each not in skipped:
            partial.put_bytes(local_store.get_bytes(each))
    code, report = _verify_json(partial, digest, capsys=capsys)
    assert code == 3
    roles = {r["role"]: r for r in report["roles"]}
    assert sorted(roles["final_snapshot"]["missing"]) == skipped
    assert all(r["status"] == "ok" for name, r in roles.items() if name != "final_snapshot")
    assert run(["--store", partial.url, "verify", digest]) == 3
    noun = "objects" if len(skipped) > 1 else "object"
    assert re.search(rf"final_snapshot:\s+{len(skipped)} {noun} missing", capsys.readouterr().out)


def test_verify_local_files_against_the_run(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest, _, tmp_path = recorded
    final = tmp_path / "run" / "final"
    # The same snapshot in another container is the same snapshot.
    as_tar = tmp_path / "final.tar.gz"
    with tarfile.open(as_tar, "w:gz") as tar:
        tar.add(final, arcname=".")
    args = ["--store", local_store.url, "verify", digest, "--snapshot", f"final={as_tar}"]
    args += ["--snapshot", f"initial={tmp_path / 'inputs' / 'env.zip'}"]
    args += ["--trajectory", str(tmp_path / "run" / "trajectory.json")]
    assert run(args) == 0
    assert capsys.readouterr().out.count("ok ") == 3
    (final / "reports" / "q3.csv").write_text("tampered\n")
    (final / "extra.txt").write_text("new\n")
    code = run(["--store", local_store.url, "verify", digest, "--snapshot", f"final={final}"])
    assert code == 4
    text = capsys.readouterr().out
    assert "MISMATCH final_snapshot" in text
    assert "M reports/q3.csv" in text and "+ extra.txt" in text
    sidecar = str(tmp_path / "run" / "trajectory.manifest.json")
    (tmp_path / "other.json").write_text("{}")
    code = run(["verify", sidecar, "--trajectory", str(tmp_path / "other.json"), "--json"])
    assert code == 4  # a sidecar is enough to check files; no store needed
    check = json.loads(capsys.readouterr().out)["checks"][0]
    assert check["status"] == "mismatch" and check["role"] == "trajectory"
    assert run(["--store", local_store.url, "verify", digest, "--snapshot", "final"]) == 2


# -- replay ------------------------------------------------------------------------


def test_replay_materialises_verified_inputs_and_the_command(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest, manifest, tmp_path = recorded
    into = tmp_path / "replay"
    assert run(["--store", local_store.url, "replay", digest, "--into", str(into)]) == 0
    out = capsys.readouterr()
    plan = json.loads((into / "replay.json").read_text())
    assert plan["manifest"] == digest
    for role, name in [("agent_config", "agent_config.json"), ("mcp_config", "mcp_config.json")]:
        ref = getattr(manifest, role)
        assert casstore.hash_file(into / name) == (ref.digest, ref.size)
    assert manifest.initial_snapshot is not None
    for form in ("initial", "initial.zip"):
        assert casstore.tree_digest(into / form).digest == manifest.initial_snapshot.digest
    mcp = json.loads((into / "mcp_config.json").read_text())
    assert mcp["mcpServers"]["github"]["env"]["GITHUB_TOKEN"] == "<redacted>"
    assert "mcp_config: mcpServers.github.env.GITHUB_TOKEN" in plan["variables_to_supply"]
    assert "parameters: orchestrator_extra_args.api_key" in plan["variables_to_supply"]
    command = shlex.split(plan["command_line"])
    # Run from outside its checkout: the script is named from the checkout's root.
    assert command[:2] == ["python", "${CODE_ROOT}/examples/simple_runner.py"]
    assert "$CODE_ROOT" in " ".join(plan["variables_to_supply"])
    # Recorded input files are passed as their copies; the secret is a placeholder.
    assert command[command.index("--agent-config") + 1] == str(into / "agent_config.json")
    assert command[command.index("--initial-messages") + 1] == str(into / "initial_messages.json")
    assert command[command.index("--api-key") + 1] == "${API_KEY}" and TOKEN not in out.out
    assert command[command.index("--seed") + 1] == "5" and "--deterministic" in command
    assert command[command.index("--orchestrator-model") + 1] == "fake/echo-1"
    assert plan["command_line"] in out.out
    assert plan["warnings"] == [] and "warning" not in out.err
    # A second replay into the same folder needs --force.
    assert run(["--store", local_store.url, "replay", digest, "--into", str(into)]) == 1


def test_replay_warns_when_code_or_dependencies_differ(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, manifest, tmp_path = recorded
    lock = local_store.put_bytes(b"old lock")
    code = msgspec.structs.replace(
        manifest.code,
        git_sha="0" * 40,
        casstore_version="0.0.1",
        lock_file_name="uv.lock",
        lock_file=casstore.Ref(lock.digest, lock.size),
    )
    older = msgspec.structs.replace(manifest, code=code)
    digest = local_store.put_bytes(casstore.encode_record(older)).digest
    into = tmp_path / "replay-old"
    assert run(["--store", local_store.url, "replay", digest, "--into", str(into)]) == 0
    err = capsys.readouterr().err
    assert f"the run was made at git {'0' * 40}" in err
    assert "the run used 0.0.1" in err
    assert f"the run's uv.lock was {lock.digest}" in err


# -- fetch_for_grading --------------------------------------------------------------


def test_fetch_for_grading_gives_verified_zips_and_trajectory(
    recorded: tuple[str, RunManifest, Path], local_store: Store
) -> None:
    digest, manifest, tmp_path = recorded
    fetched = fetch_for_grading(digest, store=local_store, dest=tmp_path / "grading")
    assert fetched.digest == digest and fetched.manifest == manifest
    assert fetched.initial_snapshot is not None and fetched.final_snapshot is not None
    with zipfile.ZipFile(fetched.final_snapshot) as z:
        assert z.read("reports/q3.csv").endswith(b"total,400\n")
    assert fetched.trajectory is not None
    assert json.loads(fetched.trajectory.read_text()) == {"messages": ["done"]}
    assert manifest.final_snapshot is not None
    assert casstore.tree_digest(fetched.final_snapshot).digest == manifest.final_snapshot.digest
    by_sidecar = fetch_for_grading(
        tmp_path / "run" / "trajectory.manifest.json", store=local_store, dest=tmp_path / "g2"
    )
    assert by_sidecar.digest == digest


def test_fetch_for_grading_refuses_corrupt_objects(
    recorded: tuple[str, RunManifest, Path], local_store: Store
) -> None:
    digest, manifest, tmp_path = recorded
    assert manifest.trajectory is not None
    flip_stored_byte(local_store, manifest.trajectory.digest)
    dest = tmp_path / "grading"
    with pytest.raises(IntegrityError):
        fetch_for_grading(digest, store=local_store, dest=dest)
    assert not (dest / "trajectory.json").exists()


# -- bundles --------------------------------------------------------------------


def test_bundle_roundtrip_into_an_empty_store(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest, manifest, tmp_path = recorded
    bundle = tmp_path / "run.casb"
    assert run(["--store", local_store.url, "bundle", digest, "-o", str(bundle)]) == 0
    assert f"{digest}  run manifest" in capsys.readouterr().out
    again = tmp_path / "again.casb"
    assert run(["--store", local_store.url, "bundle", digest, "-o", str(again)]) == 0
    assert again.read_bytes() == bundle.read_bytes()  # deterministic
    inside = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bundle.read_bytes())).read()
    assert TOKEN.encode() not in inside and b"<redacted>" in inside
    assert run(["--store", local_store.url, "bundle", digest, "-o", str(again)]) == 1
    other, _ = init_store(str(tmp_path / "team-b"))
    capsys.readouterr()
    assert run(["--store", other.url, "unbundle", str(bundle), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # The imported run is a root there too, under the ref recording would give it.
    ref = f"runs/{manifest.trajectory_id}"
    assert result["roots"] == [{"digest": digest, "kind": "run-manifest", "ref": ref}]
    assert other.refs() == {ref: digest}
    assert result["imported"] == result["objects"] == len(walk(local_store, [digest]).order)
    assert run(["--store", other.url, "verify", digest]) == 0
    capsys.readouterr()
    assert run(["--store", other.url, "unbundle", str(bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == 0
    assert other.refs() == {ref: digest}  # the same ref, not a second one


def _rewrite(bundle: Path, change: Any) -> None:
    """Decompress a bundle, let ``change`` edit the tar bytes, compress it again."""
    raw = bytearray(
        zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bundle.read_bytes())).read()
    )
    raw = change(raw)
    bundle.write_bytes(zstandard.ZstdCompressor().compress(bytes(raw)))


def _flip_member(raw: bytearray) -> bytearray:
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        member = tar.getmembers()[3]
    raw[member.offset_data] ^= 0x01
    return raw


def _add_foreign(raw: bytearray) -> bytearray:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(bytes(raw))) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        evil = tarfile.TarInfo("../../evil.sh")
        evil.size = 4
        dst.addfile(evil, io.BytesIO(b"boom"))
    return bytearray(out.getvalue())


def _truncate(raw: bytearray) -> bytearray:
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        last = tar.getmembers()[-1]
    return raw[: last.offset]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: _rewrite(b, _flip_member), "is corrupt"),
        (lambda b: _rewrite(b, _add_foreign), "foreign member"),
        (lambda b: _rewrite(b, _truncate), "truncated"),
        (lambda b: b.write_bytes(b.read_bytes()[:-40]), "corrupt compressed data|truncated"),
        (lambda b: b.write_bytes(b"PK\x03\x04 not a bundle"), "not a casstore bundle"),
    ],
    ids=["flipped-byte", "foreign-member", "missing-member", "cut-short", "not-a-bundle"],
)
def test_damaged_bundles_are_refused_and_import_nothing(
    recorded: tuple[str, RunManifest, Path],
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
    damage: Any,
    message: str,
) -> None:
    digest, _, tmp_path = recorded
    bundle = tmp_path / "run.casb"
    assert run(["--store", local_store.url, "bundle", digest, "-o", str(bundle)]) == 0
    damage(bundle)
    other, _ = init_store(str(tmp_path / "team-b"))
    capsys.readouterr()
    assert run(["--store", other.url, "unbundle", str(bundle)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(message, err)
    assert list(other.iter_digests()) == []
    assert not (tmp_path / "evil.sh").exists()
