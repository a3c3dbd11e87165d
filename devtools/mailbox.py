"""A local SMTP server (aiosmtpd on loopback) that keeps what it receives: the mail server of tests, `make run`
and benchmarks. Receivers deduplicate by Message-ID; `unique()` is that view, `received` every copy."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from devtools.ports import free_port
from shared.runtime.event_loop import event_loop_factory


@dataclass(frozen=True)
class Received:
    """One message as the server got it (headers only: what deduplication and assertions need)."""

    message_id: str
    to: str
    subject: str
    notice: str  # X-Countermand-Notice: the idempotency key
    language: str
    content_type: str
    at: float = 0.0  # Unix time the server accepted it (end of DATA)


@dataclass
class Mailbox:
    """aiosmtpd on 127.0.0.1; `refuse` answers RCPT for an address with a reply (e.g. "550 5.1.1 No such user"),
    `busy_once` answers 450 to an address's first attempt only. `on_count` (n, action): `action()` runs in the
    server the moment the n-th message is kept, before its reply goes out (a test kills the sender there)."""

    path: Path | None = None
    refuse: dict[str, str] = field(default_factory=dict)
    busy_once: set[str] = field(default_factory=set)
    on_count: tuple[int, Callable[[], object]] | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Mailbox:
        self.port = self.port or free_port()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        new_loop = event_loop_factory()  # uvloop when installed: less per command
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, data_size_limit=1 << 20, loop=new_loop()
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Mailbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settings(self) -> dict[str, Any]:
        """Notifier settings pointing at this server."""
        return {"email_channel": "smtp", "smtp_host": "127.0.0.1", "smtp_port": self.port}

    def keep(self, message: Received) -> None:
        with self._lock:
            self.received.append(message)
            if self.on_count is not None and len(self.received) == self.on_count[0]:
                self.on_count[1]()
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(asdict(message), ensure_ascii=False) + "\n")

    def unique(self) -> dict[str, Received]:
        """What a receiver keeps: one message per Message-ID (the first copy)."""
        with self._lock:
            kept: dict[str, Received] = {}
            for message in self.received:
                kept.setdefault(message.message_id, message)
            return kept

    def count(self) -> int:
        with self._lock:
            return len(self.received)


class _Handler:
    """aiosmtpd's handler hooks."""

    def __init__(self, box: Mailbox) -> None:
        self._box = box
        self._tried: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        if address in self._box.refuse:
            return self._box.refuse[address]
        if address in self._box.busy_once and address not in self._tried:
            self._tried.add(address)
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        at = time.time()
        headers = _headers(envelope.content)
        self._box.keep(
            Received(
                message_id=_text(headers.get("message-id", "")),
                to=_text(headers.get("to", "")),
                subject=_text(headers.get("subject", "")),
                notice=_text(headers.get("x-countermand-notice", "")),
                language=_text(headers.get("content-language", "")),
                content_type=_content_type(headers.get("content-type", "")),
                at=at,
            )
        )
        return "250 Message accepted for delivery"


def _headers(content: bytes) -> dict[str, str]:
    """The message's header fields (lower-case name -> raw value, the first of each name): the head split at its
    first blank line, as the email package's header parser would, at a tenth of its cost per message."""
    head = re.split(rb"\r?\n\r?\n", content, maxsplit=1)[0].decode("ascii", "surrogateescape")
    fields: dict[str, str] = {}
    for line in _LOGICAL.split(head):
        name, colon, value = line.partition(":")
        if colon:
            fields.setdefault(name.strip().lower(), value.strip(" \t"))
    return fields


def _content_type(value: str) -> str:
    """main/sub of a Content-Type value, text/plain when missing or malformed (as the email package reads it)."""
    kind = value.split(";", 1)[0].strip().lower()
    return kind if kind.count("/") == 1 else "text/plain"


def _text(value: object) -> str:
    """A header's value unfolded, its RFC 2047 encoded-words decoded (the email package's header registry does
    this too, at a cost that made the server the slowest part of a benchmark)."""
    unfolded = _FOLD.sub("", str(value)).strip()  # a value too long for its line starts on the next one
    return str(make_header(decode_header(unfolded))) if "=?" in unfolded else unfolded


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LOGICAL = re.compile(r"\r?\n(?![ \t])")  # a line break that does not fold: the next header field starts
