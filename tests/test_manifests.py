"""Run manifests and grading records: canonical encoding, schema evolution, redaction."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest

from casstore import ManifestError, canonical_json, hash_bytes, redact
from casstore.format.manifest import (
    GradingRecord,
    Ref,
    RunManifest,
    decode,
    decode_as,
    encode,
)
from casstore.graph.closure import walk
from casstore.runs.redaction import MARKER, is_secret_key, redacted_paths
from casstore.store.objects import Store

D1 = "blake3:" + "1" * 64
D2 = "blake3:" + "2" * 64


def _manifest(**changes: object) -> RunManifest:
    base = RunManifest(
        created_at="2026-11-24T12:00:00Z",
        trajectory_id="t1",
        orchestrator_model="m",
        orchestrator_extra_args={"temperature": 0, "top_p": 0.5, "seed": 7},
        seed=7,
        deterministic=True,
        agent_config_values={"max_steps": 30},
        initial_snapshot=Ref(D1, 10),
        trajectory=Ref(D2, 20),
    )
    return msgspec.structs.replace(base, **changes)


# Pinned: a change to these bytes is a change of the manifest format (docs/FORMAT.md).
GOLDEN_MANIFEST = (
    b'{"casstore":"run-manifest","schema_version":"1.0","created_at":"2026-11-24T12:00:00Z",'
    b'"code":{"git_sha":"","git_dirty":null,"python_version":"","casstore_version":"",'
    b'"lock_file_name":"","lock_file":null},"runner":"","trajectory_id":"t1","agent_config_id":"",'
    b'"agent_config_values":{"max_steps":30},"orchestrator_model":"m",'
    b'"orchestrator_extra_args":{"seed":7,"temperature":0,"top_p":0.5},"seed":7,'
    b'"deterministic":true,"agent_config":null,"orchestrator_config":null,'
    b'"initial_messages":null,"mcp_config":null,"initial_snapshot":{"digest":"'
    + D1.encode()
    + b'","size":10},"final_snapshot":null,"trajectory":{"digest":"'
    + D2.encode()
    + b'","size":20},"snapshots":{},"artifacts":{},"host":null}'
)


def test_manifest_encoding_is_canonical_and_pinned() -> None:
    assert encode(_manifest()) == GOLDEN_MANIFEST
    # Dict insertion order never shows in the bytes.
    shuffled = _manifest(orchestrator_extra_args={"top_p": 0.5, "seed": 7, "temperature": 0})
    assert encode(shuffled) == GOLDEN_MANIFEST
    assert decode(GOLDEN_MANIFEST) == _manifest()
    assert encode(_manifest(seed=8)) != GOLDEN_MANIFEST


def test_newer_minor_version_is_read_and_its_new_fields_ignored() -> None:
    newer = json.loads(GOLDEN_MANIFEST)
    newer["schema_version"] = "1.9"
    newer["sandbox_image"] = {"digest": D1, "size": 3}
    newer["code"]["compiler"] = "cc"
    decoded = decode(msgspec.json.encode(newer))
    assert isinstance(decoded, RunManifest)
    assert decoded.schema_version == "1.9"
    assert decoded.seed == 7 and decoded.trajectory == Ref(D2, 20)


@pytest.mark.parametrize("version", ["2.0", "0.3", "10.1"])
def test_unknown_major_version_is_refused_by_name(version: str) -> None:
    data = GOLDEN_MANIFEST.replace(b'"1.0"', f'"{version}"'.encode())
    with pytest.raises(ManifestError, match=rf"schema version {version}\b"):
        decode(data, "m.json")


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"casstore":"tree/1","entries":[]}', "a tree/1 record"),
        (b"hello", "not a casstore record"),
        (GOLDEN_MANIFEST.replace(b'"seed":7,"det', b'"seed":"7","det'), "malformed"),
        (GOLDEN_MANIFEST[:-5], "malformed"),
        (GOLDEN_MANIFEST.replace(b'"1.0"', b'"one"'), "MAJOR.MINOR"),
    ],
)
def test_bad_records_raise_manifest_error(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        decode(data)


def test_decode_as_refuses_the_other_kind() -> None:
    grading = encode(GradingRecord(run=Ref(D1, 5), score=0.5))
    assert isinstance(decode(grading), GradingRecord)
    with pytest.raises(ManifestError, match="not a run-manifest"):
        decode_as(RunManifest, grading)


def test_closure_of_a_manifest_holds_every_reference(local_store: Store) -> None:
    blob = local_store.put_bytes(b"trajectory").digest
    run = _manifest(initial_snapshot=None, trajectory=Ref(blob, 10))
    root = local_store.put_bytes(encode(run)).digest
    closure = walk(local_store, [root])
    assert closure.order == [blob, root]
    assert closure.kinds == {root: "run-manifest"}


# -- canonical JSON and secrets --------------------------------------------------


def _permuted(value: object, rng: random.Random) -> object:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _permuted(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_permuted(v, rng) for v in value]
    return value


MCP: dict[str, Any] = {
    "mcpServers": {
        "github": {
            "command": "mcp-github",
            "args": ["--read-only", "--token", "tok-123456789", "--level=3"],
            "env": {"GITHUB_TOKEN": "t0k3n", "RETRIES": 3},
            "headers": {"Authorization": "Bearer abcdefghijkl"},
        },
        "search": {
            "url": "https://search.example/mcp",
            "auth": {"type": "oauth", "client": {"id": "cid", "secret": "s3cr3t"}},
            "timeout": 30,
        },
    }
}


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    rng = random.Random(5)
    reference = hash_bytes(canonical_json(MCP))
    for indent in (None, 0, 2, 7):
        text = json.dumps(_permuted(MCP, rng), indent=indent)
        assert hash_bytes(canonical_json(json.loads(text))) == reference
    changed = json.loads(json.dumps(MCP))
    changed["mcpServers"]["search"]["timeout"] = 31
    assert hash_bytes(canonical_json(changed)) != reference


def test_mcp_redaction_covers_env_headers_auth_and_secret_flags() -> None:
    redacted = redact(MCP, mcp=True)
    text = json.dumps(redacted)
    for secret in ("t0k3n", "abcdefghijkl", "s3cr3t", "cid", "tok-123456789"):
        assert secret not in text
    github = redacted["mcpServers"]["github"]
    assert github["env"] == {"GITHUB_TOKEN": MARKER, "RETRIES": MARKER}
    assert github["args"] == ["--read-only", "--token", MARKER, "--level=3"]
    assert redacted["mcpServers"]["search"]["url"] == "https://search.example/mcp"
    assert redacted["mcpServers"]["search"]["timeout"] == 30
    assert sorted(redacted_paths(redacted)) == [
        "mcpServers.github.args[2]",
        "mcpServers.github.env.GITHUB_TOKEN",
        "mcpServers.github.env.RETRIES",
        "mcpServers.github.headers.Authorization",
        "mcpServers.search.auth.client.id",
        "mcpServers.search.auth.client.secret",
        "mcpServers.search.auth.type",
    ]
    assert MCP["mcpServers"]["github"]["env"]["GITHUB_TOKEN"] == "t0k3n"  # not modified


@pytest.mark.parametrize(
    "key",
    ["api_key", "OPENAI_API_KEY", "x-api-key", "apiKey", "token", "GITHUB_TOKEN",
     "access_token", "client_secret", "password", "Authorization", "privateKey", "auth"],
)  # fmt: skip
def test_secret_key_names(key: str) -> None:
    assert is_secret_key(key)
    assert redact({key: "value", "nested": {key: "v2"}}) == {key: MARKER, "nested": {key: MARKER}}


@pytest.mark.parametrize(
    "key", ["max_tokens", "temperature", "seed", "top_p", "author", "path", "reasoning_effort"]
)
def test_lookalike_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert redact({key: "value"}) == {key: "value"}


def test_credential_shaped_values_are_redacted_anywhere() -> None:
    value = {"note": "sk-abcdefghijklmnopqrstuvwx", "ok": "skip-this", "h": "Bearer 0123456789"}
    assert redact(value) == {"note": MARKER, "ok": "skip-this", "h": MARKER}
