"""Email notices on a real SMTP server (aiosmtpd on loopback): what arrives, and how each reply is classified."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from services.notifier.smtp import Mail, SmtpServer, checked_address, client, message_id, send, send_all


class Inbox:
    """An SMTP server's handler: keeps what it accepts, or answers with `reply` for every recipient."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        if self.reply:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, SmtpServer]]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield handler, SmtpServer("127.0.0.1", controller.port, "notices@provider.example")
    controller.stop()


MAIL = Mail(
    "d-1:1:restricted:42",
    "ada@example.com",
    "fable-5 is no longer available to you",
    "Because of directive d-1 ...",
    "<p>Because of directive <b>d-1</b> ...</p>",
    "de",
)


async def test_a_notice_arrives_as_multipart_text_and_html_with_a_stable_message_id(inbox) -> None:
    handler, server = inbox
    async with client(server) as smtp:
        assert (await send(smtp, server, MAIL)).verdict == "delivered"
    [received] = handler.messages
    assert received["To"] == "ada@example.com"
    assert received["Subject"] == MAIL.subject
    assert received["Message-ID"] == message_id(MAIL.idempotency_key, "provider.example")
    assert received["Content-Language"] == "de" and received["Auto-Submitted"] == "auto-generated"
    assert received.get_content_type() == "multipart/alternative"
    assert received.get_body(("plain",)).get_content().strip() == MAIL.text
    assert received.get_body(("html",)).get_content().strip() == MAIL.html


def test_the_message_id_is_the_same_for_the_same_notice_and_differs_between_notices() -> None:
    assert message_id("d-1:1:restricted:42", "x") == message_id("d-1:1:restricted:42", "x")
    assert message_id("d-1:1:restricted:42", "x") != message_id("d-1:1:restricted:43", "x")


@pytest.mark.parametrize(
    "reply, verdict", [("450 4.2.1 Mailbox busy", "transient"), ("550 5.1.1 No such user", "permanent")]
)
async def test_smtp_replies_are_classified(inbox, reply: str, verdict: str) -> None:
    handler, server = inbox
    handler.reply = reply
    async with client(server) as smtp:
        outcome = await send(smtp, server, MAIL)
    assert outcome.verdict == verdict
    assert reply.split()[0] in outcome.reason
    assert handler.messages == []


@pytest.mark.parametrize("address", ["not-an-address", "ada@", "@example.com", "ada@exa mple.com", ""])
async def test_an_invalid_address_is_a_permanent_failure_and_nothing_is_sent(inbox, address: str) -> None:
    handler, server = inbox
    async with client(server) as smtp:
        outcome = await send(smtp, server, Mail("k", address, "s", "t", "<p>t</p>"))
    assert outcome.verdict == "permanent" and "invalid email address" in outcome.reason
    assert handler.messages == []


def test_addresses_are_normalised() -> None:
    assert checked_address("Ada@Example.COM") == "Ada@example.com"


async def test_a_server_that_is_not_there_fails_every_mail_transiently() -> None:
    server = SmtpServer("127.0.0.1", _free_port(), "notices@provider.example", timeout_s=2)
    outcomes = await send_all(server, [MAIL, MAIL])
    assert [o.verdict for o in outcomes] == ["transient", "transient"]
    assert outcomes[0].reason.startswith("SMTP connection")


async def test_send_all_delivers_on_one_connection(inbox) -> None:
    handler, server = inbox
    other = Mail("d-1:1:restricted:43", "bob@example.com", "s", "t", "<p>t</p>")
    assert [o.verdict for o in await send_all(server, [MAIL, other])] == ["delivered", "delivered"]
    assert [m["To"] for m in handler.messages] == ["ada@example.com", "bob@example.com"]
