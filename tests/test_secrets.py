"""Planted secrets never leave the recording machine; ordinary text is never redacted.

A corpus of positives (each shape of docs' table, each key-name rule, secrets inside
strings, a secret repeated elsewhere) and negatives (prose and keys that only look
secret) is planted in every input of a run; the scan covers stored objects, the
sidecar, a bundle, ``cas manifest show`` and ``cas replay``'s output.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import Store, hash_bytes
from casstore.cli.main import run
from casstore.runs.redaction import MARKER, Redactor, redact
from casstore.runs.secrets import find, is_secret_key
from runner_hooks import RunRecorder

_rng = random.Random(18)


def _token(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits
#: Value shapes: (name, the secret itself, the text that carries it).
SHAPES = [
    ("openai", s := "sk-proj-" + _token(ALNUM, 40), f"key {s} here"),
    ("anthropic", s := "sk-ant-api03-" + _token(ALNUM, 40), s),
    ("github classic", s := "ghp_" + _token(ALNUM, 36), f"token={s}"),
    ("github fine-grained", s := "github_pat_" + _token(ALNUM, 60), s),
    ("gitlab", s := "glpat-" + _token(ALNUM, 20), s),
    ("slack", s := "xoxb-" + _token(string.digits, 12) + "-" + _token(ALNUM, 24), s),
    ("hugging face", s := "hf_" + _token(ALNUM, 34), f"HF: {s}"),
    ("google api key", s := "AIza" + _token(ALNUM, 35), s),
    ("google oauth", s := "ya29." + _token(ALNUM, 40), s),
    ("aws access key id", s := "AKIA" + _token(UPPER, 16), s),
    ("stripe", s := "sk_live_" + _token(ALNUM, 24), s),
    ("npm", s := "npm_" + _token(ALNUM, 36), s),
    ("pypi", s := "pypi-" + _token(ALNUM, 60), s),
    ("sendgrid", s := "SG." + _token(ALNUM, 22) + "." + _token(ALNUM, 43), s),
    (
        "jwt",
        s := "eyJ" + _token(ALNUM, 20) + ".eyJ" + _token(ALNUM, 30) + "." + _token(ALNUM, 43),
        f"Authorization header was {s}",
    ),
    (
        "pem private key",
        s := "\n" + "\n".join(_token(ALNUM, 64) for _ in range(4)) + "\n",
        f"-----BEGIN RSA PRIVATE KEY-----{s}-----END RSA PRIVATE KEY-----",
    ),
    ("url password", s := _token(ALNUM, 14), f"postgres://app:{s}@db.internal:5432/x"),
    ("bearer", s := _token(ALNUM, 30) + "9", f"Bearer {s}"),
    ("assignment in text", s := _token(ALNUM, 16), f"export DB_PASSWD={s} then run"),
    ("flag in a string", s := _token(ALNUM, 18), f"serve --api-key {s} --port 8080"),
    ("flag with equals", s := _token(ALNUM, 18), f"serve --token={s}"),
]
#: Key names that say secret: (key, secret value).
NAMED = [(key, _token(ALNUM, 20)) for key in (
    "OPENAI_KEY", "PGPASSWORD", "client_secret", "x-api-key", "apiKey", "GITHUB_TOKEN",
    "Authorization", "privateKey", "db_password", "aws_secret_access_key", "auth", "cookie",
)]  # fmt: skip
#: Text and settings that only look secret: recorded verbatim.
NEGATIVE_TEXT = [
    "Implement basic authentication for the API",
    "Delete every file; use basic commands please",
    "the tokenizer splits each token of the secret message",
    "a secret santa game for the team",
    "the key is under the mat",
    "Bearer of bad news",
    "password reset flow: send the user a link",
    "sk-short",
    "run --verbose --token-budget 1000",
    "login --token --verbose",
    "see https://docs.example/auth?user=alice",
    "$OPENAI_API_KEY",
]
NEGATIVE_SETTINGS = {
    "max_tokens": 1000,
    "token_budget": "1000",
    "key": "Enter",
    "secret_santa_game": "yes",
    "auth_mode": "none",
    "author": "Jane Doe",
    "tokenizer": "cl100k_base",
    "keyboard": "qwerty",
    "APP_FS_ROOT": "/srv/fs",
    "path": "/home/user/data",
}


def _positives() -> list[str]:
    return [secret for _, secret, _ in SHAPES] + [secret for _, secret in NAMED]


def _negatives() -> list[str]:
    return [*NEGATIVE_TEXT, *(str(v) for v in NEGATIVE_SETTINGS.values())]


@pytest.mark.parametrize(("name", "secret", "text"), SHAPES, ids=[s[0] for s in SHAPES])
def test_each_shape_is_replaced_where_it_stands(name: str, secret: str, text: str) -> None:
    redacted, found = find(text, MARKER)
    assert secret not in redacted and MARKER in redacted
    # Only the secret goes: the text around it stays.
    assert redacted == text.replace(secret, MARKER)
    assert any(secret in f or f in secret for f in found)


@pytest.mark.parametrize("text", NEGATIVE_TEXT)
def test_ordinary_text_is_kept(text: str) -> None:
    assert find(text, MARKER)[0] == text
    assert redact({"content": text}) == {"content": text}


def test_key_names_word_based() -> None:
    for key, _ in NAMED:
        assert is_secret_key(key), key
    for key in NEGATIVE_SETTINGS:
        assert not is_secret_key(key), key


def test_different_prompts_keep_different_digests() -> None:
    secret = "sk-proj-" + _token(ALNUM, 40)
    first = [{"role": "system", "content": f"Implement basic authentication; key {secret}"}]
    second = [{"role": "system", "content": f"Delete every file; use basic commands; key {secret}"}]
    a, b = redact(first), redact(second)
    assert secret not in json.dumps(a) + json.dumps(b)
    assert hash_bytes(json.dumps(a).encode()) != hash_bytes(json.dumps(b).encode())


def _plant(folder: Path) -> dict[str, Any]:
    """Inputs of a run with every positive and negative placed somewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    named = dict(NAMED)
    pasted = named["GITHUB_TOKEN"]
    messages = [
        {"role": "system", "content": text} for _, _, text in SHAPES[: len(SHAPES) // 2]
    ] + [
        {"role": "user", "content": " / ".join(NEGATIVE_TEXT)},
        {"role": "user", "content": f"my token is {pasted}, please use it"},  # by value
    ]
    agent_config = {
        "agent_config_id": "a1",
        "agent_config_values": {
            **NEGATIVE_SETTINGS,
            "env": {k: v for k, v in NAMED[:4]},
            "notes": [text for _, _, text in SHAPES[len(SHAPES) // 2 :]],
        },
    }
    mcp = {
        "mcpServers": {
            "svc": {
                "command": "svc",
                "args": ["--read-only", "--client-secret", named["client_secret"]],
                "env": {k: v for k, v in NAMED[4:]} | {"APP_FS_ROOT": "/srv/fs"},
                "headers": {"x-api-key": named["x-api-key"]},
                "config": {"db": {"password": named["db_password"], "host": "db"}},
            }
        }
    }
    extra = {"temperature": 0, "extra_headers": {"Authorization": named["Authorization"]}}
    paths = {}
    for name, value in [("messages", messages), ("agent", agent_config), ("mcp", mcp)]:
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(value))
    return {"paths": paths, "extra": extra}


def test_planted_secret_scan(
    tmp_path: Path,
    local_store: Store,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planted = _plant(tmp_path / "inputs")
    paths = planted["paths"]
    monkeypatch.setenv("SERVICE_PASSWORD", NAMED[1][1])
    monkeypatch.setenv("APP_MODE", "basic")
    trajectory = tmp_path / "out" / "trajectory.json"
    trajectory.parent.mkdir()
    trajectory.write_text(json.dumps({"messages": ["done"]}))
    argv = ["python", "-m", "runner.main", "--agent-config", str(paths["agent"]),
            "--api-key", SHAPES[0][1], "--db-url", SHAPES[16][2], "--mode", "basic"]  # fmt: skip
    with RunRecorder(
        store=local_store,
        trajectory_id="planted",
        agent_config=paths["agent"],
        initial_messages=paths["messages"],
        orchestrator_extra_args=planted["extra"],
        env=["SERVICE_PASSWORD", "APP_MODE"],
        argv=argv,
        code_root=tmp_path,
    ) as recorder:
        recorder.attach_mcp_config(paths["mcp"])
        digest = recorder.finish(trajectory)

    seen = [local_store.get_bytes(d) for d in local_store.iter_digests()]
    seen.append((tmp_path / "out" / "trajectory.manifest.json").read_bytes())
    assert run(["--store", local_store.url, "bundle", digest, "-o", str(tmp_path / "b.casb")]) == 0
    seen.append((tmp_path / "b.casb").read_bytes())
    assert run(["--store", local_store.url, "manifest", "show", digest]) == 0
    assert run(["--store", local_store.url, "replay", digest, "--into", str(tmp_path / "r")]) == 0
    seen.append(capsys.readouterr().out.encode())
    seen += [p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()]
    everything = b"\n".join(seen)
    # Stored objects are compressed: the scan reads them decompressed (get_bytes), and
    # the bundle's own bytes would hide a secret; its objects are the stored ones.
    leaked = [s for s in _positives() if s.encode() in everything]
    assert leaked == []
    stored_text = b"\n".join(local_store.get_bytes(d) for d in local_store.iter_digests())
    kept = [n for n in _negatives() if json.dumps(n)[1:-1].encode() not in stored_text]
    assert kept == []
    assert b"/srv/fs" in stored_text and b'"APP_MODE":"basic"' in stored_text


def test_a_trajectory_holding_an_input_secret_is_named_and_strict_refuses(
    tmp_path: Path, local_store: Store
) -> None:
    secret = _token(ALNUM, 24)
    mcp = {"mcpServers": {"s": {"env": {"SERVICE_TOKEN": secret}}}}
    trajectory = tmp_path / "trajectory.json"
    trajectory.write_text(json.dumps({"messages": [f"I used {secret}"]}))
    leak = r"trajectory .*mcp_config\.mcpServers\.s\.env"
    with (
        pytest.warns(UserWarning, match=leak),
        RunRecorder(store=local_store, code_root=tmp_path) as recorder,
    ):
        recorder.attach_mcp_config(mcp)
        recorder.finish(trajectory)
    with (
        pytest.raises(casstore.CasError, match="contains a secret"),
        RunRecorder(store=local_store, code_root=tmp_path, strict=True) as recorder,
    ):
        recorder.attach_mcp_config(mcp)
        recorder.finish(trajectory)


def test_redactor_scan_finds_a_secret_across_pieces() -> None:
    redactor = Redactor()
    redactor.redact({"api_key": "abcdefghijkl"}, "agent_config")
    assert redactor.scan([b"..abcdef", b"ghijkl.."]) == ["agent_config.api_key"]
