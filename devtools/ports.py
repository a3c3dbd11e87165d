"""Free loopback ports for brokers and services started locally (tests, demo, benchmarks).

A port is chosen below the kernel's ephemeral range. A port the OS hands out for `bind(0)` comes from
that range, the same range every outgoing connection takes its local port from: with hundreds of Kafka
connections opening and closing while a service starts, the port could be taken between the choice and
the service's own bind (uvicorn then exits 3, "address already in use"). Below the range only another
listener can take it.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

LOWEST = 10_000  # clear of well-known and commonly configured ports
ATTEMPTS = 200
MIN_ROOM = 1_000  # below this many ports under the range, let the OS pick
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_issued: set[int] = set()  # never hand out a port twice in one process, even if its user has not bound it yet


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default where it cannot be read)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to now, outside the ephemeral range where there is room."""
    low, _ = ephemeral_range()
    if low - LOWEST >= MIN_ROOM:
        for _ in range(ATTEMPTS):
            port = LOWEST + secrets.randbelow(low - LOWEST)
            if port not in _issued and _bindable(port):
                _issued.add(port)
                return port
    while True:  # no room below the range (or all tried were taken): let the OS pick
        port = _os_pick()
        if port not in _issued:
            _issued.add(port)
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _os_pick() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
