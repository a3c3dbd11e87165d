"""Ports for locally started brokers and services: bindable, distinct, and clear of outgoing connections."""

from __future__ import annotations

import socket

import pytest

from devtools import ports


def test_a_port_is_bindable_distinct_and_below_the_ephemeral_range() -> None:
    low, _ = ports.ephemeral_range()
    chosen = [ports.free_port() for _ in range(50)]
    assert len(set(chosen)) == 50
    assert all(ports.LOWEST <= port < low for port in chosen)
    for port in chosen[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_something_listens_on_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (taken + 1, 60_999))
        monkeypatch.setattr(ports, "LOWEST", taken)  # the room below the range is exactly the taken port
        monkeypatch.setattr(ports, "MIN_ROOM", 1)
        port = ports.free_port()
    assert port != taken


def test_without_room_below_the_range_the_os_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (ports.LOWEST + 10, 60_999))
    port = ports.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
