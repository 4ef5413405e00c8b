"""The installed distributions of the running interpreter: what a lock file only claims."""

from __future__ import annotations


def installed() -> dict[str, str]:
    """Distribution name (normalised, lower case) -> version, for every installed one."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name:
            found.setdefault(name.lower().replace("_", "-"), dist.version)
    return dict(sorted(found.items()))
