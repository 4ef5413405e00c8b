"""``store.toml``: where the store is and how it behaves.

The file is found in the current folder or its parents. Its ``[s3]``,
``[remotes.*]`` and ``[cache]`` sections apply however the store URL was
chosen (``--store``, ``$CAS_STORE`` or ``[store] url``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from casstore.errors import ConfigError

FILENAME = "store.toml"
#: The setting that bounds what a snapshot may unpack to, as errors name it.
TREE_MAX_BYTES = "[tree] max_bytes in store.toml"
ENV_STORE = "CAS_STORE"
#: The embedded store's folder, beside ``store.toml``.
EMBEDDED_DIR = ".cas"
#: A configuration is a few hundred bytes; anything near this is not one.
MAX_CONFIG_BYTES = 1 << 20


class StoreSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: str | None = None
    compression_level: int = 3
    #: zstd worker threads for large objects: 0 = the calling thread, -1 = every core.
    compression_threads: int = -1
    #: Refuse every write (as ``cas --read-only``).
    read_only: bool = False


class S3Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    anon: bool = False
    #: Requests in flight at once for batched checks and transfers.
    concurrency: int = 16
    #: Seconds to wait for a connection, and for each answer (between bytes, not for a
    #: whole transfer), and how often a failed request is retried. With the defaults an
    #: endpoint that accepts connections and never answers fails within a minute.
    connect_timeout: float = 5
    read_timeout: float = 10
    retries: int = 2


def s3_client_options(s3: S3Section) -> dict[str, Any]:
    """s3fs options bounding how long a request may wait, and how often it is retried."""
    return {
        "config_kwargs": {
            "connect_timeout": s3.connect_timeout,
            "read_timeout": s3.read_timeout,
            # total_max_attempts counts the first request; botocore's max_attempts does not.
            "retries": {"total_max_attempts": s3.retries + 1, "mode": "standard"},
        },
    }


class RemoteSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: str


class CacheSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    dir: str | None = None
    max_size: str = "10GiB"
    enabled: bool = True


class TreeSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: What a snapshot may unpack to before it is refused as a decompression bomb:
    #: bytes, or a size with a unit ("1TiB").
    max_bytes: str | int = "1TiB"
    #: The most entries (files, links, empty folders) a tree may have, and the largest
    #: tree record read: each entry costs about 1 KiB of memory while a tree is used.
    max_entries: int = 250_000
    max_record_bytes: str | int = "32MiB"


class RecordSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Environment variables recorded with every run (secret-named ones redacted).
    env: list[str] = []
    #: Where a run's objects wait when the store is unreachable (``cas push --spool``).
    spool: str | None = None


class ConfigFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    store: StoreSection = msgspec.field(default_factory=StoreSection)
    s3: S3Section = msgspec.field(default_factory=S3Section)
    remotes: dict[str, RemoteSection] = msgspec.field(default_factory=dict)
    cache: CacheSection = msgspec.field(default_factory=CacheSection)
    tree: TreeSection = msgspec.field(default_factory=TreeSection)
    record: RecordSection = msgspec.field(default_factory=RecordSection)


@dataclass(frozen=True)
class Config:
    """The settings in force: the parsed file (or defaults) and where it was found."""

    path: Path | None = None
    file: ConfigFile = field(default_factory=ConfigFile)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the file are resolved against."""
        return self.path.parent if self.path else Path.cwd()

    def storage_options(self, url: str) -> dict[str, Any]:
        """fsspec options for ``url`` from the ``[s3]`` section."""
        if not url.startswith(("s3://", "s3a://")):
            return {}
        s3 = self.file.s3
        options: dict[str, Any] = {}
        client: dict[str, Any] = {}
        if s3.endpoint_url:
            client["endpoint_url"] = s3.endpoint_url
        if s3.region:
            client["region_name"] = s3.region
        if client:
            options["client_kwargs"] = client
        if s3.profile:
            options["profile"] = s3.profile
        if s3.anon:
            options["anon"] = True
        options.update(s3_client_options(s3))
        return options

    def remote_url(self, name: str) -> str:
        remote = self.file.remotes.get(name)
        if remote is None:
            known = ", ".join(sorted(self.file.remotes)) or "none configured"
            raise ConfigError(f"no remote named {name!r} in {FILENAME} ({known})")
        return normalize_url(remote.url, self.base_dir)


def find_config(start: Path | None = None) -> Path | None:
    """The nearest ``store.toml`` in ``start`` (default: the current folder) or its parents."""
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None = None, *, search: bool = True) -> Config:
    """Parse ``path``, or the ``store.toml`` found from the current folder; defaults if none."""
    if path is None and search:
        path = find_config()
    if path is None:
        return Config()
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {size} bytes; a store.toml is at most {MAX_CONFIG_BYTES} (is it one?)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        parsed = msgspec.toml.decode(data, type=ConfigFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if not -7 <= parsed.store.compression_level <= 22:
        raise ConfigError(f"{path}: store.compression_level must be between -7 and 22")
    s3 = parsed.s3
    if min(s3.connect_timeout, s3.read_timeout) <= 0 or s3.retries < 0 or s3.concurrency < 1:
        raise ConfigError(
            f"{path}: [s3] timeouts must be positive, retries 0 or more, concurrency 1 or more"
        )
    # Sizes are checked now, so a bad one is named before any work starts.
    parse_size(parsed.tree.max_bytes, f"{path}: [tree] max_bytes")
    parse_size(parsed.tree.max_record_bytes, f"{path}: [tree] max_record_bytes")
    if parsed.tree.max_entries < 1:
        raise ConfigError(f"{path}: [tree] max_entries must be 1 or more")
    named = [parsed.store.url, parsed.cache.dir, parsed.record.spool, parsed.s3.endpoint_url]
    named += [remote.url for remote in parsed.remotes.values()]
    if any("\x00" in text for text in named if text):
        raise ConfigError(f"{path}: a URL or folder with a NUL byte")
    parse_size(parsed.cache.max_size, f"{path}: [cache] max_size")
    return Config(path, parsed)


def normalize_url(url: str, base_dir: Path) -> str:
    """Resolve a local path against ``base_dir``; leave other URLs as they are."""
    if not url:
        raise ConfigError("empty store URL")
    if "\x00" in url:
        raise ConfigError(f"a store URL with a NUL byte: {url!r}")
    scheme, sep, rest = url.partition("://")
    if sep and scheme != "file":
        return url
    local = Path(rest if sep else url).expanduser()
    return str(local if local.is_absolute() else (base_dir / local).absolute())


@dataclass(frozen=True)
class StoreLocation:
    url: str
    #: The embedded default (``.cas`` beside ``store.toml``), created on first use.
    embedded: bool


def resolve_location(url: str | None, config: Config) -> StoreLocation:
    """Choose the store URL: the argument, else ``$CAS_STORE``, else ``store.toml``."""
    embedded_url = str(config.base_dir / EMBEDDED_DIR) if config.path else None
    if url:
        chosen = normalize_url(url, Path.cwd())
    elif os.environ.get(ENV_STORE):
        chosen = normalize_url(os.environ[ENV_STORE], Path.cwd())
    elif config.path is not None:
        configured = config.file.store.url
        chosen = normalize_url(configured, config.base_dir) if configured else str(embedded_url)
    else:
        raise ConfigError(
            f"no store configured: pass --store URL, set ${ENV_STORE}, "
            f"or create {FILENAME} (cas init)"
        )
    return StoreLocation(chosen, embedded=chosen == embedded_url)


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def human_bytes(n: float) -> str:
    """A size as people read it: ``512 B``, ``1.5 MiB`` (the inverse of :func:`parse_size`)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def counted(n: int, noun: str) -> str:
    """``1 object``, ``2 objects``, ``1 entry``, ``3 entries``: a count as people write it."""
    if n != 1:
        return f"{n} {noun}"
    return "1 " + (noun[:-3] + "y" if noun.endswith("ies") else noun.removesuffix("s"))


def parse_size(text: str | int, setting: str = "size") -> int:
    """``"10GiB"`` -> bytes; decimal (kB, MB) and binary (KiB, MiB) units; an integer is
    bytes. ``setting`` names where the value came from, for the error."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ConfigError(f"{setting}: a size cannot be negative ({text})")
        return text
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ConfigError(
            f"{setting}: invalid size {text!r}: a number of bytes, or with a unit (10GiB)"
        )
    number, unit = match.group(1), (match.group(2) or "").lower()
    binary = "i" in unit
    letter = unit.rstrip("b").rstrip("i")
    factor = 1024 ** "_kmgt".index(letter) if binary and letter else _UNITS[letter]
    value = float(number) * factor
    if value >= 1 << 63:
        raise ConfigError(f"{setting}: {text!r} is too large a size")
    return int(value)
