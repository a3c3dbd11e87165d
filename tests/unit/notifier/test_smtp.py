"""Email notices on a real SMTP server (aiosmtpd on loopback): what arrives, and how each reply is classified."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from hypothesis import example, given, settings
from hypothesis import strategies as st

from devtools.mailbox import Mailbox
from services.notifier.email_channel import EmailChannel
from services.notifier.notices import Contact, Notice
from services.notifier.settings import ChannelLimits
from services.notifier.sink import Letter
from services.notifier.smtp import (
    Mail,
    SmtpServer,
    build,
    checked_address,
    client,
    message_id,
    render,
    send,
    send_all,
)


class Inbox:
    """An SMTP server's handler: keeps what it accepts, or answers with `reply` for every recipient."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.reply: str | None = None
        self.peers: set[object] = set()  # one (address, port) per client connection

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        if self.reply:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.peers.add(session.peer)
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


# Text as templates can make it: any printable character (accents, CJK, emoji), lines of any length, lines that
# start with "." or "--" or "From ", "=" signs, trailing spaces. Carriage returns are line breaks like "\n".
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\n.-= \t"))
LINE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=200)


def _parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


@settings(max_examples=300, deadline=None)
@given(subject=LINE, text=TEXT, html=TEXT, locale=st.sampled_from(["en", "fr", "fr-CA", "de"]))
@example(subject="Accès à fable-5 restreint " * 6, text="=_ --=_x\n.\n..\nFrom me\n" + "é" * 200, html="", locale="fr")
def test_a_rendered_message_reads_back_as_the_email_package_reads_build(
    subject: str, text: str, html: str, locale: str
) -> None:
    mail = Mail("d-1:1:restricted:42", "ada@example.com", subject, text, html, locale)
    raw = render(mail, "notices@provider.example", "Countermand Notices", "provider.example")
    assert raw is not None and max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322 line limit
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF lines only
    ours, theirs = (
        _parsed(raw),
        _parsed(build(mail, "notices@provider.example", "Countermand Notices", "provider.example").as_bytes()),
    )
    for name in ("From", "To", "Subject", "Message-ID", "Auto-Submitted", "X-Countermand-Notice", "Content-Language"):
        assert " ".join(str(ours[name]).split()) == " ".join(str(theirs[name]).split()), name
    assert ours.get_content_type() == theirs.get_content_type() == "multipart/alternative"
    assert not ours.defects and all(not part.defects for part in ours.walk())
    for subtype in ("plain", "html"):
        mine, reference = (m.get_body((subtype,)).get_content().replace("\r\n", "\n") for m in (ours, theirs))
        assert mine == reference.replace("\r", "\n"), subtype


def test_an_internationalised_address_is_left_to_the_email_package() -> None:
    assert render(Mail("k", "añа@example.com", "s", "t", "h"), "n@p.example", "C", "p.example") is None


def test_a_digest_with_its_member_list_attached_is_left_to_the_email_package() -> None:
    members = ("members.csv", "user_id,models\n7,fable-5\n")
    mail = Mail("k", "admin@example.com", "s", "t", "h", attachment=members)
    assert render(mail, "n@p.example", "C", "p.example") is None
    built = build(mail, "n@p.example", "C", "p.example")
    (attached,) = list(built.iter_attachments())
    assert attached.get_filename() == "members.csv" and "7,fable-5" in attached.get_content()


async def test_a_notice_id_too_long_for_one_header_line_is_read_back_whole() -> None:
    """The email package starts such a value on a continuation line; a receiver (here the test mailbox) unfolds
    it to the id itself, without the folding whitespace."""
    key = "ORG-t26763-102:1:restricted:999999999:org-acme-t26763-102"
    mail = Mail(key, "admin@example.com", "s", "t", "h", attachment=("members.csv", "user_id\n7\n"))
    assert "X-Countermand-Notice:\n " in build(mail, "n@p.example", "C", "p.example").as_string()
    with Mailbox() as box:
        outcomes = await send_all(SmtpServer("127.0.0.1", box.port, "n@p.example"), [mail])
    assert [o.verdict for o in outcomes] == ["delivered"] and [m.notice for m in box.received] == [key]


def _letters(first: int, count: int) -> list[Letter]:
    return [
        Letter(
            Notice(f"d-1:1:restricted:{u}", u, "d-1", 1, "restricted", ("fable-5",)),
            Contact(f"u{u}@example.com", "en", None, None),
            "subject",
            "text",
            "<p>html</p>",
        )
        for u in range(first, first + count)
    ]


async def test_connections_are_kept_across_batches_and_replaced_once_the_server_dropped_them(inbox) -> None:
    handler, server = inbox
    channel = EmailChannel(server, ChannelLimits(concurrency=2, backoff_base_s=0.01, backoff_cap_s=0.05))
    try:
        for batch in range(3):
            outcomes = await channel.deliver(_letters(batch * 10, 10))
            assert {o.verdict for o in outcomes} == {"delivered"}
        assert len(handler.messages) == 30
        assert len(handler.peers) <= 2  # three batches, at most `concurrency` sessions opened
        for smtp in [smtp for _, smtp in channel._idle]:
            smtp.close()  # as a server closing idle sessions would
        outcomes = await channel.deliver(_letters(30, 10))
        assert {o.verdict for o in outcomes} == {"delivered"} and len(handler.messages) == 40
        assert 2 < len(handler.peers) <= 4
    finally:
        await channel.close()
    assert channel._idle == []
