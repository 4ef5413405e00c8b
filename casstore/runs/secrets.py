"""What a secret looks like: by the name of the key that holds it, or by its own shape.

Recognised shapes (each replaced where it stands, the text around it kept):

| shape | example |
| --- | --- |
| OpenAI and Anthropic keys | ``sk-...``, ``sk-proj-...``, ``sk-ant-...`` |
| GitHub tokens | ``ghp_...``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_...`` |
| GitLab, Slack, Hugging Face | ``glpat-...``, ``xoxb-...`` (``xox[abprs]-``), ``hf_...`` |
| Google | API keys ``AIza...``, OAuth tokens ``ya29....`` |
| AWS access key ids | ``AKIA...``, ``ASIA...`` |
| Stripe, npm, PyPI, SendGrid | ``sk_live_...``, ``npm_...``, ``pypi-...``, ``SG.x.y`` |
| JSON Web Tokens | ``eyJ....eyJ....sig`` |
| PEM private keys | ``-----BEGIN ... PRIVATE KEY-----`` (the body) |
| credentials in URLs | ``https://user:PASSWORD@host`` (the password) |
| HTTP credentials | ``Bearer TOKEN``, ``Basic TOKEN`` (a token with a digit) |
| assignments | ``DB_PASSWD=VALUE`` when the name says secret |
| flags | ``--api-key VALUE``, ``--token=VALUE`` when the flag says secret |

Key names that say secret (compared without case or separators): ending in
token, secret, password, passwd, passphrase, pwd, credential(s), apikey,
accesskey, privatekey, secretkey, authorization, cookie; and environment-style
names ending in ``_KEY`` (``OPENAI_KEY``); ``auth`` itself (a string under it is a
credential; a mapping under it is searched key by key). Not: ``key``, ``max_tokens``,
``token_budget``, ``tokenizer``, ``auth_mode``, ``author``, ``secret_santa_game``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SUFFIXES = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "credential",
    "credentials",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "authorization",
    "cookie",
)
_EXACT = frozenset({"auth"})
_ENV_KEY = re.compile(r"[A-Z0-9]+(?:_[A-Z0-9]+)*_KEY")
_SEPARATORS = re.compile(r"[^a-z0-9]")


def is_secret_key(key: str) -> bool:
    """Whether a key's name says its value is a secret (``OPENAI_API_KEY``, ``PGPASSWORD``,
    ``x-api-key``); never for ``key`` alone or ``max_tokens``."""
    if _ENV_KEY.fullmatch(key):
        return True
    squashed = _SEPARATORS.sub("", key.lower())
    return squashed in _EXACT or any(squashed.endswith(suffix) for suffix in _SUFFIXES)


_TOKEN_CHARS = r"[A-Za-z0-9_-]"
#: Whole-match shapes: the match is the secret.
_WHOLE = re.compile(
    "|".join(
        [
            r"\bsk-(?:ant-|proj-)?" + _TOKEN_CHARS + r"{20,}",
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}",
            r"\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"\bglpat-" + _TOKEN_CHARS + r"{20,}",
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
            r"\bhf_[A-Za-z0-9]{20,}",
            r"\bAIza[0-9A-Za-z_-]{35}",
            r"\bya29\.[0-9A-Za-z_-]{20,}",
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
            r"\bnpm_[A-Za-z0-9]{30,}",
            r"\bpypi-[A-Za-z0-9_-]{40,}",
            r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ]
    )
)
#: Shapes where one group is the secret and the rest stays.
_PEM = re.compile(r"(-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----)(.+?)(-----END \2-----)", re.DOTALL)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)([^/\s@]+)(@)")
_HTTP_CREDENTIAL = re.compile(
    r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9+/=._~-]*\d[A-Za-z0-9+/=._~-]*)"
)
_ASSIGNMENT = re.compile(r"(\b[A-Za-z_][A-Za-z0-9_.-]*\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s'\",;&]+)")
# A value never starts with a dash: ``--token --verbose`` is two flags.
_FLAG = re.compile(r"(--?([A-Za-z][A-Za-z0-9_-]*)(?:=|\s+))(\"[^\"]*\"|'[^']*'|(?!-)[^\s'\"]+)")


def find(text: str, marker: str) -> tuple[str, list[str]]:
    """``text`` with every secret-shaped part replaced by ``marker``, and those parts."""
    found: list[str] = []

    def whole(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return marker

    def group(index: int) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            secret = match.group(index)
            if secret == marker or len(secret) < 4:
                return match.group(0)
            found.append(secret)
            start, end = match.span(index)
            base = match.start(0)
            return match.group(0)[: start - base] + marker + match.group(0)[end - base :]

        return replace

    def named(name_group: int, value_group: int) -> Callable[[re.Match[str]], str]:
        replace = group(value_group)

        def maybe(match: re.Match[str]) -> str:
            name = match.group(name_group).split("=")[0].strip().lstrip("-")
            return replace(match) if is_secret_key(name) else match.group(0)

        return maybe

    text = _PEM.sub(group(3), text)
    text = _WHOLE.sub(whole, text)
    text = _URL_PASSWORD.sub(group(2), text)
    text = _HTTP_CREDENTIAL.sub(group(2), text)
    text = _ASSIGNMENT.sub(named(1, 2), text)
    text = _FLAG.sub(named(2, 3), text)
    return text, found
