"""Random ids for the hot path, drawn from a buffer of ``os.urandom`` bytes.

``uuid.uuid4()`` makes one ``getrandom`` call per id; each call releases the GIL, and under load
the event loop then waits to get it back from the database writer thread. Reading 4 KiB at a
time gives ids of the same quality (the kernel's CSPRNG) with one call per 256 UUIDs.
"""

from __future__ import annotations

import os
import threading
import uuid

_CHUNK = 4096


class _RandomPool:
    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._pos + n > len(self._buf):
                self._buf = os.urandom(_CHUNK)
                self._pos = 0
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out


_pool = _RandomPool()


def uuid4() -> str:
    """A random (version 4) UUID as a string."""
    return str(uuid.UUID(bytes=_pool.take(16), version=4))


def hex_id(nbytes: int = 8) -> str:
    """A random hex string of ``2 * nbytes`` characters (correlation ids)."""
    return _pool.take(nbytes).hex()
