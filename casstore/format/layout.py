"""The store's key layout: the one place that knows where things live.

Keys are ``/``-separated paths relative to the store root, the same for a
local folder and any fsspec URL (see ``docs/FORMAT.md``).
"""

from __future__ import annotations

from casstore.format.digest import ALGORITHM, HEX_LENGTH, PREFIX

MARKER = "casstore.json"
OBJECTS = f"objects/{ALGORITHM}"
REFS = "refs"
TAGS = f"{REFS}/tags"
PACKS = "packs"
INDEX = "index"
#: Where local stores stage temp files before publishing them by rename.
TMP = "tmp"
#: Where gc moves unreachable objects, ``trash/<batch>/<object key>``, until they
#: have stayed unreachable for the grace period.
TRASH = "trash"
#: Leases (``locks/gc.<n>``): one gc at a time.
LOCKS = "locks"
#: Where fsck moves corrupt objects and packs, ``quarantine/<key>``, for inspection.
QUARANTINE = "quarantine"


def immutable(key: str) -> bool:
    """Whether ``key`` holds content that never changes once written (objects, packs,
    pack indexes): local stores make those files read-only, as git does."""
    return key.startswith((f"{OBJECTS}/", f"{PACKS}/", f"{INDEX}/"))


#: 2: merged indexes (``index/m-...``) and sealed trash batches; see docs/FORMAT.md.
FORMAT_VERSION = 2


def _fanned_out(folder: str, digest: str) -> str:
    # Two hex characters of folder keep any one folder (or S3 listing) small.
    hexpart = digest[len(PREFIX) :]
    return f"{folder}/{hexpart[:2]}/{hexpart[2:]}"


def object_key(digest: str) -> str:
    """``objects/blake3/<2 hex>/<62 hex>`` for a canonical digest."""
    return _fanned_out(OBJECTS, digest)


def prefix_dir(hexprefix: str) -> str:
    """The folder holding every object whose hex starts with ``hexprefix`` (>= 2 chars)."""
    return f"{OBJECTS}/{hexprefix[:2]}"


def digest_of_key(key: str) -> str | None:
    """The digest stored under an object key, or None when the key is not an object."""
    parts = key.rstrip("/").split("/")
    if len(parts) < 2:
        return None
    head, rest = parts[-2], parts[-1]
    hexpart = head + rest
    if len(head) != 2 or len(hexpart) != HEX_LENGTH:
        return None
    try:
        int(hexpart, 16)
    except ValueError:
        return None
    if hexpart != hexpart.lower():
        return None
    return PREFIX + hexpart


def tag_key(name: str) -> str:
    return f"{TAGS}/{name}"


def ref_key(ref: str) -> str:
    """``refs/<kind>/<name>``: a ref such as ``tags/baseline`` or ``runs/t1``."""
    return f"{REFS}/{ref}"


def pack_key(pack_digest: str) -> str:
    """``packs/<2 hex>/<62 hex>``: a pack, named by the digest of its bytes."""
    return _fanned_out(PACKS, pack_digest)


def index_key(pack_digest: str) -> str:
    """``index/<64 hex>``: the index of the pack with that digest."""
    return f"{INDEX}/{pack_digest[len(PREFIX) :]}"


MERGED_PREFIX = "m-"


def merged_index_key(count: int, index_digest: str) -> str:
    """``index/m-<entries>-<64 hex>``: a merged index, named by the digest of its bytes;
    the entry count in the name lets a listing say how large it is."""
    return f"{INDEX}/{MERGED_PREFIX}{count}-{index_digest[len(PREFIX) :]}"


def merged_of_key(key: str) -> tuple[int, str] | None:
    """(entry count, digest) of a merged index key, or None."""
    name = key.rsplit("/", 1)[-1]
    if not name.startswith(MERGED_PREFIX):
        return None
    count, _, hexpart = name[len(MERGED_PREFIX) :].partition("-")
    if not count.isdigit() or len(hexpart) != HEX_LENGTH or hexpart != hexpart.lower():
        return None
    try:
        int(hexpart, 16)
    except ValueError:
        return None
    return int(count), PREFIX + hexpart


def pack_of_index_key(key: str) -> str | None:
    """The pack digest an index key names, or None when the key is not an index."""
    name = key.rsplit("/", 1)[-1]
    if len(name) != HEX_LENGTH or name != name.lower():
        return None
    try:
        int(name, 16)
    except ValueError:
        return None
    return PREFIX + name


def pack_of_key(key: str) -> str | None:
    """The pack digest of a key under ``packs/``, or None."""
    return digest_of_key(key) if key.startswith(PACKS + "/") else None


def trash_key(batch: str, key: str) -> str:
    return f"{TRASH}/{batch}/{key}"


#: Written into a trash batch once everything in it has left its old place.
TRASH_SEAL = "sealed"


def trash_seal_key(batch: str) -> str:
    return f"{TRASH}/{batch}/{TRASH_SEAL}"


def trash_batch_of_key(key: str) -> str | None:
    """The batch a key under ``trash/`` belongs to."""
    parts = key.split("/", 2)
    return parts[1] if len(parts) >= 2 and parts[0] == TRASH else None


def trashed_digest(key: str) -> str | None:
    """The digest of the object a key under ``trash/<batch>/`` holds, or None."""
    parts = key.split("/", 2)
    if len(parts) != 3 or parts[0] != TRASH or not parts[2].startswith(OBJECTS + "/"):
        return None
    return digest_of_key(parts[2])


def lock_key(name: str) -> str:
    return f"{LOCKS}/{name}"


def quarantine_key(key: str) -> str:
    return f"{QUARANTINE}/{key}"
