"""Secrets never reach a store: redaction of configs, and canonical JSON.

Applied before anything is hashed, stored or written to a sidecar. Redacted
values become :data:`MARKER`; the keys stay, so a reader can see which
variables a replay must supply (:func:`redacted_paths`).

What counts as a secret:

- in an MCP config, every value under a server entry's ``env``, ``headers``
  and ``auth`` (at any depth below them);
- anywhere, the value of a key whose name says secret (``api_key``,
  ``GITHUB_TOKEN``, ``x-api-key``, ``password``, ``Authorization``...), but not
  lookalikes such as ``max_tokens``;
- anywhere, a string shaped like a credential (``Bearer ...``, ``sk-...``,
  ``ghp_...``, AWS access key ids), and the value after a command-line flag
  that names a secret (``--api-key VALUE`` or ``--token=VALUE``) in an
  argument list.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import msgspec

MARKER = "<redacted>"

#: Keys whose whole subtree is secret inside an MCP server entry.
SECRET_SUBTREES = frozenset({"env", "headers", "auth"})
_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "authorization",
        "auth",
        "credential",
        "credentials",
        "apikey",
        "cookie",
        "bearer",
        "pat",
    }
)
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")}
)
_SECRET_VALUE = re.compile(
    r"(?i:bearer|basic|token)\s+\S{8,}"
    r"|sk-[A-Za-z0-9_-]{16,}"
    r"|(?:ghp|gho|ghs|ghu|github_pat|glpat|xox[abprs])[-_][A-Za-z0-9_-]{16,}"
    r"|AKIA[0-9A-Z]{16}"
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


def is_secret_key(key: str) -> bool:
    """True when a key's name says its value is a secret (``OPENAI_API_KEY``, ``token``)."""
    words = _words(key)
    if key.lower() == "key" or any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def looks_like_secret(value: str) -> bool:
    return bool(_SECRET_VALUE.search(value))


def redact(value: Any, *, mcp: bool = False) -> Any:
    """A copy of a JSON value with every secret replaced by :data:`MARKER`.

    ``mcp=True`` also redacts the ``env``, ``headers`` and ``auth`` of MCP
    server entries. The argument is never modified.
    """
    return _redact(value, mcp=mcp, under_secret=_NO)


# How secret a subtree is: not, by a key's name (its strings are), or an MCP
# env/headers/auth block (every value is, numbers included).
_NO, _NAMED, _BLOCK = 0, 1, 2


def _redact(value: Any, *, mcp: bool, under_secret: int) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            secret = under_secret
            if mcp and key in SECRET_SUBTREES:
                secret = _BLOCK
            elif is_secret_key(str(key)):
                secret = max(secret, _NAMED)
            out[key] = _redact(item, mcp=mcp, under_secret=secret)
        return out
    if isinstance(value, list | tuple):
        return _redact_list(list(value), mcp=mcp, under_secret=under_secret)
    if isinstance(value, str) and under_secret:
        return MARKER
    if under_secret == _BLOCK and isinstance(value, int | float) and not isinstance(value, bool):
        return MARKER
    if isinstance(value, str) and looks_like_secret(value):
        return MARKER
    return value


def _redact_list(items: list[Any], *, mcp: bool, under_secret: int) -> list[Any]:
    out: list[Any] = []
    secret_next = False
    for item in items:
        if secret_next and isinstance(item, str):
            out.append(MARKER)
            secret_next = False
            continue
        secret_next = False
        if isinstance(item, str) and item.startswith("-") and not under_secret:
            flag, eq, _ = item.lstrip("-").partition("=")
            if is_secret_key(flag):
                if eq:
                    out.append(item[: item.index("=") + 1] + MARKER)
                else:
                    out.append(item)
                    secret_next = True
                continue
        out.append(_redact(item, mcp=mcp, under_secret=under_secret))
    return out


def redacted_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every redacted value (``mcpServers.github.env.GITHUB_TOKEN``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from redacted_paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from redacted_paths(item, f"{prefix}[{index}]")
    elif isinstance(value, str) and MARKER in value:
        yield prefix


def canonical_json(value: Any) -> bytes:
    """One encoding per JSON value: keys sorted, no whitespace, UTF-8.

    Permuted keys and reformatting hash the same; a changed value does not.
    """
    try:
        return msgspec.json.encode(value, order="deterministic")
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"not a JSON value: {exc}") from None
