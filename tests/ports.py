"""Ports for servers that tests start: free ones chosen at run time, never fixed numbers, so
that two runs of the suite on one machine do not meet."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
