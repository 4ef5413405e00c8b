"""Secrets never reach a store: precise redaction of a run's inputs, and canonical JSON.

Only the secret itself is replaced by :data:`MARKER`, never the text around it,
so two inputs that differ anywhere else keep different digests. Secrets are
found (:mod:`casstore.runs.secrets`):

- by the name of the key that holds them, at any depth, in any config: the
  whole string value is the secret (``OPENAI_API_KEY``, ``PGPASSWORD``,
  ``Authorization``); other keys of environment-like dicts stay as they are;
- by their shape, inside any string (provider token prefixes, JWTs, PEM
  blocks, passwords in URLs, ``NAME=VALUE`` and ``--flag VALUE`` with a
  secret name);
- in an argument list, the item after a flag with a secret name;
- by value: a :class:`Redactor` remembers every secret it found, and replaces
  it wherever else it appears among the inputs it redacts (a token from the
  MCP config pasted into a message), and :meth:`Redactor.leaks` finds it in a
  trajectory or an artifact, which are outputs and stored as they are.

A value that only refers to a secret (``$GITHUB_TOKEN``, ``${OPENAI_API_KEY}``)
is kept: it is not one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from casstore.runs.secrets import find, is_secret_key

MARKER = "<redacted>"
#: Secrets shorter than this are not searched for elsewhere (too many false hits).
MIN_REMEMBERED = 6
_REFERENCE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")

__all__ = ["MARKER", "Redactor", "canonical_json", "is_secret_key", "redact", "redacted_paths"]


class Redactor:
    """Redacts the inputs of one run, remembering each secret it finds."""

    def __init__(self) -> None:
        #: Each secret found -> where it was first found (``mcp_config.env.X``).
        self.secrets: dict[str, str] = {}

    def redact(self, value: Any, where: str = "") -> Any:
        """A copy of a JSON value with every secret replaced (the argument is untouched)."""
        return self._value(value, where, named=False)

    def redact_all(self, values: dict[str, Any]) -> dict[str, Any]:
        """Several inputs of one run, by name: secrets found in any are redacted in all."""
        first = {name: self.redact(value, name) for name, value in values.items()}
        if not self.secrets:
            return first
        return {name: self.redact(value, name) for name, value in first.items()}

    def _remember(self, secret: str, where: str) -> None:
        if len(secret) >= MIN_REMEMBERED:
            self.secrets.setdefault(secret, where)

    def _value(self, value: Any, where: str, *, named: bool) -> Any:
        if isinstance(value, dict):
            return {
                key: self._value(item, _join(where, str(key)), named=is_secret_key(str(key)))
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return self._list(list(value), where)
        if isinstance(value, str):
            if named and value and value != MARKER and not _REFERENCE.fullmatch(value):
                self._remember(value, where)
                return MARKER
            return self._text(value, where)
        return value

    def _text(self, text: str, where: str) -> str:
        text, found = find(text, MARKER)
        for secret in found:
            self._remember(secret, where)
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MARKER)
        return text

    def _list(self, items: list[Any], where: str) -> list[Any]:
        out: list[Any] = []
        secret_next = False
        for index, item in enumerate(items):
            at = f"{where}[{index}]"
            if secret_next and isinstance(item, str) and not item.startswith("-"):
                self._remember(item, at)
                out.append(MARKER)
                secret_next = False
                continue
            secret_next = (
                isinstance(item, str)
                and item.startswith("-")
                and "=" not in item
                and " " not in item
                and is_secret_key(item.lstrip("-"))
            )
            out.append(self._value(item, at, named=False))
        return out

    def leaks(self, data: bytes) -> list[str]:
        """Where the secrets found so far come from, for each one ``data`` contains."""
        return [where for secret, where in self.secrets.items() if secret.encode() in data]

    def scan(self, chunks: Iterable[bytes]) -> list[str]:
        """:meth:`leaks` of a stream read in pieces (a secret may straddle two)."""
        overlap = max((len(s.encode()) for s in self.secrets), default=1) - 1
        found: dict[str, None] = {}
        tail = b""
        for chunk in chunks:
            window = tail + chunk
            found.update(dict.fromkeys(self.leaks(window)))
            tail = window[-overlap:] if overlap else b""
        return list(found)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def redact(value: Any) -> Any:
    """A copy of one JSON value with every secret replaced by :data:`MARKER`."""
    return Redactor().redact(value)


def redacted_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every value holding a redaction (``mcpServers.github.env.GITHUB_TOKEN``)."""
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
