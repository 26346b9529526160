"""Loopback ports for servers a test starts.

Prefer binding to port 0 and reading the port back (no other process can take it in between);
``free_port`` is for a port that must be known before the server exists, such as one passed to a
subprocess on its command line.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel's pick for an ephemeral bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bound_socket() -> socket.socket:
    """A listening-ready TCP socket on a loopback port, held until the server adopts it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s
