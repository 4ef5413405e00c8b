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
from casstore.runs.redaction import MARKER, Redactor, is_secret_key, redacted_paths
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
GOLDEN_MANIFEST_1_0 = (
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
#: Schema 1.1 appends what a replay and a diff need; everything before is 1.0's.
GOLDEN_MANIFEST = (
    GOLDEN_MANIFEST_1_0[:-1].replace(b'"1.0"', b'"1.1"')
    + b',"invocation":null,"configs":{},"environment":{},"packages":null}'
)


def test_manifest_encoding_is_canonical_and_pinned() -> None:
    assert encode(_manifest()) == GOLDEN_MANIFEST
    # Dict insertion order never shows in the bytes.
    shuffled = _manifest(orchestrator_extra_args={"top_p": 0.5, "seed": 7, "temperature": 0})
    assert encode(shuffled) == GOLDEN_MANIFEST
    assert decode(GOLDEN_MANIFEST) == _manifest()
    assert encode(_manifest(seed=8)) != GOLDEN_MANIFEST


def test_schema_1_0_manifests_still_read() -> None:
    """Runs recorded before 1.1 read with the new fields empty, and keep their digest
    (the stored bytes are never rewritten)."""
    old = decode(GOLDEN_MANIFEST_1_0)
    assert isinstance(old, RunManifest)
    assert old.schema_version == "1.0"
    assert old.invocation is None and old.configs == {} and old.packages is None
    assert msgspec.structs.replace(old, schema_version="1.1") == _manifest()


def test_schema_1_1_fields_are_pinned() -> None:
    from casstore.format.manifest import Invocation

    run = _manifest(
        invocation=Invocation(
            program=["python", "-m", "runner.main"],
            cwd="agents",
            args=["--agent-config", "a.json", "--mcp-gateway-url", "http://x"],
            files={"1": "agent_config"},
            placeholders={"3": "MCP_GATEWAY_URL"},
        ),
        configs={"agent_effective": Ref(D1, 3)},
        environment={"AGENT_TIMEOUT_SECONDS": "600"},
        packages=Ref(D2, 4),
    )
    data = encode(run)
    assert data.endswith(
        b'"invocation":{"program":["python","-m","runner.main"],"cwd":"agents",'
        b'"args":["--agent-config","a.json","--mcp-gateway-url","http://x"],'
        b'"files":{"1":"agent_config"},"placeholders":{"3":"MCP_GATEWAY_URL"}},'
        b'"configs":{"agent_effective":{"digest":"' + D1.encode() + b'","size":3}},'
        b'"environment":{"AGENT_TIMEOUT_SECONDS":"600"},'
        b'"packages":{"digest":"' + D2.encode() + b'","size":4}}'
    )
    assert decode(data) == run
    assert run.roles()["config:agent_effective"] == Ref(D1, 3)
    assert run.roles()["packages"] == Ref(D2, 4)


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
    data = GOLDEN_MANIFEST_1_0.replace(b'"1.0"', f'"{version}"'.encode())
    with pytest.raises(ManifestError, match=rf"schema version {version}\b"):
        decode(data, "m.json")


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"casstore":"tree/1","entries":[]}', "a tree/1 record"),
        (b"hello", "not a casstore record"),
        (GOLDEN_MANIFEST.replace(b'"seed":7,"det', b'"seed":"7","det'), "malformed"),
        (GOLDEN_MANIFEST[:-5], "malformed"),
        (GOLDEN_MANIFEST_1_0.replace(b'"1.0"', b'"one"'), "MAJOR.MINOR"),
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


def test_mcp_redaction_replaces_only_the_secrets() -> None:
    """Secret-named keys, secret flags' values and secret-shaped values go; every other
    setting stays verbatim, so a changed non-secret setting changes the digest."""
    config = json.loads(json.dumps(MCP))
    config["mcpServers"]["github"]["env"]["APP_FS_ROOT"] = "/srv/fs"
    redacted = redact(config)
    text = json.dumps(redacted)
    for secret in ("t0k3n", "abcdefghijkl", "s3cr3t", "tok-123456789"):
        assert secret not in text
    github = redacted["mcpServers"]["github"]
    assert github["env"] == {"GITHUB_TOKEN": MARKER, "RETRIES": 3, "APP_FS_ROOT": "/srv/fs"}
    assert github["args"] == ["--read-only", "--token", MARKER, "--level=3"]
    assert github["headers"] == {"Authorization": MARKER}
    search = redacted["mcpServers"]["search"]
    assert search["url"] == "https://search.example/mcp" and search["timeout"] == 30
    # An OAuth client id is an identifier, not a secret; its secret is.
    assert search["auth"] == {"type": "oauth", "client": {"id": "cid", "secret": MARKER}}
    assert sorted(redacted_paths(redacted)) == [
        "mcpServers.github.args[2]",
        "mcpServers.github.env.GITHUB_TOKEN",
        "mcpServers.github.headers.Authorization",
        "mcpServers.search.auth.client.secret",
    ]
    assert MCP["mcpServers"]["github"]["env"]["GITHUB_TOKEN"] == "t0k3n"  # not modified
    other = json.loads(json.dumps(config))
    other["mcpServers"]["github"]["env"]["APP_FS_ROOT"] = "/srv/other"
    assert canonical_json(redact(other)) != canonical_json(redacted)
    other = json.loads(json.dumps(config))
    other["mcpServers"]["github"]["env"]["GITHUB_TOKEN"] = "another-token"
    assert canonical_json(redact(other)) == canonical_json(redacted)


def test_references_to_secrets_are_kept() -> None:
    value = {"env": {"OPENAI_API_KEY": "${OPENAI_API_KEY}", "GITHUB_TOKEN": "$GH"}}
    assert redact(value) == value


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


def test_credential_shaped_values_are_redacted_where_they_stand() -> None:
    value = {
        "note": "use sk-abcdefghijklmnopqrstuvwx here",
        "ok": "skip-this",
        "h": "Bearer 0123456789",
        "talk": "Bearer of bad news",
    }
    assert redact(value) == {
        "note": f"use {MARKER} here",
        "ok": "skip-this",
        "h": f"Bearer {MARKER}",
        "talk": "Bearer of bad news",
    }


def test_a_secret_found_once_is_redacted_everywhere() -> None:
    redactor = Redactor()
    out = redactor.redact_all(
        {
            "mcp_config": {"env": {"SERVICE_PASSWORD": "hunter2hunter2"}},
            "initial_messages": [{"content": "the password is hunter2hunter2"}],
        }
    )
    assert out["initial_messages"][0]["content"] == f"the password is {MARKER}"
    assert redactor.leaks(b"...hunter2hunter2...") == ["mcp_config.env.SERVICE_PASSWORD"]
    # Found across the boundary of two pieces of a stream.
    assert redactor.scan([b"xx hunter2h", b"unter2 yy"]) == ["mcp_config.env.SERVICE_PASSWORD"]
    assert redactor.scan([b"nothing here"]) == []
