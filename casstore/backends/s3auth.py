"""Who an S3 request comes from, and its Signature Version 4.

Keys given in the options or the standard environment variables are used as they
are; anything else (profiles, SSO, instance and container roles) comes from
botocore's credential chain, imported only then. Signing is a handful of HMACs
done here: botocore's request pipeline costs milliseconds of CPU per request,
which a store that sends hundreds of requests a command pays on every one.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from casstore.errors import ConfigError

#: The body is not hashed into the signature: every object is hashed by its reader.
UNSIGNED = "UNSIGNED-PAYLOAD"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str
    token: str | None = None


#: Returns the credentials to sign with now (None: unsigned requests).
CredentialSource = Callable[[], Credentials | None]


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _botocore_session(profile: str | None) -> Any:
    try:
        import botocore.session
    except ImportError as exc:
        raise ConfigError(
            "S3 credentials from a profile, SSO or an instance role need botocore: "
            "pip install 'casstore[s3]' (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        ) from exc
    return botocore.session.Session(profile=profile)


def resolve(options: Mapping[str, Any], region: str | None) -> tuple[CredentialSource, str]:
    """The credentials and the region to sign with, from the storage options, the
    environment, or botocore's chain (in that order, as s3fs and the AWS CLI do)."""
    region = region or _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
    if options.get("anon"):
        return (lambda: None), region or DEFAULT_REGION
    key, secret = options.get("key"), options.get("secret")
    profile = options.get("profile")
    if key and secret:
        fixed = Credentials(str(key), str(secret), options.get("token"))
        return (lambda: fixed), region or DEFAULT_REGION
    if not profile and _env("AWS_ACCESS_KEY_ID") and _env("AWS_SECRET_ACCESS_KEY"):
        found = Credentials(
            os.environ["AWS_ACCESS_KEY_ID"],
            os.environ["AWS_SECRET_ACCESS_KEY"],
            _env("AWS_SESSION_TOKEN"),
        )
        return (lambda: found), region or DEFAULT_REGION
    session = _botocore_session(profile)
    try:
        chain = session.get_credentials()
        region = region or session.get_config_variable("region")
    except Exception as exc:  # a named profile that does not exist, a broken config file
        raise ConfigError(f"cannot find S3 credentials: {exc}") from exc
    if chain is None:
        raise ConfigError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "name a profile ([s3] profile in store.toml), or set anon = true"
        )

    def current() -> Credentials:
        # Refreshable credentials (roles) renew themselves here when they near expiry.
        frozen = chain.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    return current, region or DEFAULT_REGION


def quote_path(path: str) -> str:
    """A key as it goes on the request line and into the canonical request."""
    return urllib.parse.quote(path, safe="/~")


def canonical_query(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items())
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class Signer:
    """Signs requests for one region; the day's signing key is derived once."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._keys: dict[tuple[str, str], bytes] = {}

    def _key(self, secret: str, day: str) -> bytes:
        found = self._keys.get((secret, day))
        if found is None:
            found = _hmac(
                _hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), self.region), "s3"),
                "aws4_request",
            )
            self._keys = {(secret, day): found}
        return found

    def sign(
        self,
        credentials: Credentials | None,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: dict[str, str],
    ) -> None:
        """Add the date and signature headers to ``headers`` (lower-case names);
        ``path`` and ``query`` as :func:`quote_path` and :func:`canonical_query` made them."""
        if credentials is None:
            return
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        headers["host"] = host
        headers["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = UNSIGNED
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(headers)
        signed = ";".join(names)
        canonical = "\n".join(
            (
                method,
                path,
                query,
                "".join(f"{name}:{headers[name].strip()}\n" for name in names),
                signed,
                UNSIGNED,
            )
        )
        scope = f"{stamp[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(
            self._key(credentials.secret, stamp[:8]), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
