"""One gc at a time: a lease, taken with a conditional create, that expires.

A lease is ``locks/gc.<n>`` holding who took it and until when. The holder of
the highest ``n`` leads. To take an expired lease a gc creates ``gc.<n+1>``
(a conditional create: of two gcs taking over at once, one wins); a live one
makes the second gc refuse with a clear message. A gc that dies leaves a lease
that expires; ``cas gc --break-lease`` removes one at once.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import time
from typing import TYPE_CHECKING

from casstore.errors import CasError, ObjectNotFound
from casstore.format import layout

if TYPE_CHECKING:
    from casstore.store.objects import Store

#: How long a lease lasts unless renewed; a gc renews it as it goes.
DURATION = 3600.0


class LeaseHeld(CasError, BlockingIOError):
    """Another gc holds the store's lease."""


def _leases(store: Store, name: str) -> dict[int, str]:
    found = {}
    for key in store.backend.list(layout.LOCKS):
        stem, _, number = key.rpartition("/")[2].rpartition(".")
        if stem == name and number.isdigit():
            found[int(number)] = key
    return found


class Lease:
    def __init__(self, store: Store, name: str = "gc", duration: float = DURATION) -> None:
        self.store = store
        self.name = name
        self.duration = duration
        self.key: str | None = None
        self._owner = secrets.token_hex(8)

    def _body(self) -> bytes:
        now = time.time()
        return json.dumps(
            {
                "owner": self._owner,
                "host": platform.node(),
                "pid": os.getpid(),
                "since": now,
                "expires": now + self.duration,
            }
        ).encode()

    def acquire(self) -> None:
        """Take the lease, or raise LeaseHeld naming its holder."""
        leases = _leases(self.store, self.name)
        number = max(leases, default=0)
        if number:
            try:
                held = json.loads(self.store.backend.read_bytes(leases[number]))
                expires = float(held["expires"])
            except (ObjectNotFound, ValueError, KeyError, TypeError):
                expires = 0.0  # released or unreadable while we looked: free
            if expires > time.time():
                raise LeaseHeld(
                    f"another gc is running on {self.store.url} (host {held.get('host')}, "
                    f"pid {held.get('pid')}, since {time.ctime(held.get('since', 0))}); "
                    f"its lease expires {time.ctime(expires)}. If it died, run "
                    "cas gc --break-lease"
                )
        key = layout.lock_key(f"{self.name}.{number + 1}")
        if not self.store.backend.create_many([(key, self._body())])[0]:
            raise LeaseHeld(f"another gc took the lease of {self.store.url} just now")
        self.key = key
        self.store.backend.delete_many([k for n, k in leases.items() if n <= number])

    def renew(self) -> None:
        if self.key is not None:
            self.store.backend.write_bytes(self.key, self._body())

    def release(self) -> None:
        if self.key is not None:
            self.store.backend.delete_many([self.key])
            self.key = None


def break_lease(store: Store, name: str = "gc") -> int:
    """Remove every lease of ``name`` (a gc that died); returns how many."""
    keys = list(_leases(store, name).values())
    store.backend.delete_many(keys)
    return len(keys)
