"""Notices as email over SMTP (aiosmtplib): multipart plain text and HTML, a Message-ID derived from the notice's
idempotency key (so a receiver can drop a copy sent again after a crash), and SMTP replies classified."""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import re
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from functools import lru_cache

import aiosmtplib
from aiosmtplib.typing import SMTPStatus
from email_validator import EmailNotValidError, validate_email

from services.notifier.retry import DELIVERED, Outcome

CRLF = "\r\n"
# An addr-spec that needs no quoting on the SMTP envelope (the checked address of nearly every recipient).
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


@dataclass(frozen=True)
class Mail:
    """One rendered notice for one address."""

    idempotency_key: str
    to: str
    subject: str
    text: str
    html: str
    locale: str = "en"
    attachment: tuple[str, str] | None = None  # (file name, CSV text)


def checked_address(address: str) -> str:
    """The normalised address, or ValueError naming why it is not one (syntax only: no DNS lookups)."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email address {address!r}: {exc}") from exc


def message_id(idempotency_key: str, domain: str) -> str:
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}@{domain}>"


def build(mail: Mail, sender: str, sender_name: str, domain: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender))
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(mail.idempotency_key, domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a compliance notice
    message["X-Countermand-Notice"] = mail.idempotency_key
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    if mail.attachment is not None:
        message.add_attachment(mail.attachment[1], subtype="csv", filename=mail.attachment[0])
    message["Content-Language"] = mail.locale  # after the content: set_content clears Content-* headers
    return message


def _header(name: str, value: str) -> str:
    """`Name: value` folded at 78 columns; RFC 2047 encoded-words when the value is not ASCII. Line breaks in
    the value become spaces (a header is one logical line)."""
    if value.isascii() and len(name) + len(value) < 76 and value.isprintable() and value.strip() == value:
        return f"{name}: {value}"
    return _encoded(name, value)


@lru_cache(maxsize=1024)  # subjects repeat across a batch: one per locale, action and set of models
def _encoded(name: str, value: str) -> str:
    flat = " ".join(value.split())
    charset = "us-ascii" if flat.isascii() else "utf-8"
    return f"{name}: {Header(flat, charset, header_name=name).encode(linesep=CRLF)}"


def _quoted_printable(text: str) -> str:
    """UTF-8 quoted-printable in CRLF lines (soft breaks at 76 columns), ending with a line break as the email
    package's set_content() does; never contains a MIME boundary."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    if not lines.endswith("\n"):
        lines += "\n"
    return binascii.b2a_qp(lines.encode(), istext=True).decode("ascii").replace("\n", CRLF)


def render(mail: Mail, sender: str, sender_name: str, domain: str) -> bytes | None:
    """The message as bytes, written directly: what build() makes, without the cost of the email package's
    header registry (which capped a sender at a few hundred messages a second). None when the address is not
    ASCII (build() and SMTPUTF8 take those) or the mail has an attachment (a digest's member list: build()).

    The boundary starts with "=_": quoted-printable writes every "=" as "=3D" or a soft break, so no line
    of either part can be mistaken for it."""
    if not mail.to.isascii() or mail.attachment is not None:
        return None
    boundary = f"=_{hashlib.sha256(mail.idempotency_key.encode()).hexdigest()[:32]}"
    lines = [
        _header("From", formataddr((sender_name, sender))),
        f"To: {mail.to}",
        _header("Subject", mail.subject),
        f"Date: {formatdate(localtime=False, usegmt=True)}",
        f"Message-ID: {message_id(mail.idempotency_key, domain)}",
        "Auto-Submitted: auto-generated",  # RFC 3834: no out-of-office replies to a compliance notice
        _header("X-Countermand-Notice", mail.idempotency_key),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        _header("Content-Language", mail.locale),
        "",
    ]
    for subtype, body in (("plain", mail.text), ("html", mail.html)):
        lines += [
            f"--{boundary}",
            f'Content-Type: text/{subtype}; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            _quoted_printable(body),
        ]
    lines += [f"--{boundary}--", ""]
    return CRLF.join(lines).encode("ascii")


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    sender_name: str = "Countermand"
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout_s: float = 30.0

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2] or "countermand.local"


async def send(smtp: aiosmtplib.SMTP, server: SmtpServer, mail: Mail) -> Outcome:
    """Send one mail on a connected client: 2xx delivered, 4xx and lost connections transient, 5xx permanent."""
    try:
        to = checked_address(mail.to)
    except ValueError as exc:
        return Outcome("permanent", str(exc))
    raw = render(mail, server.sender, server.sender_name, server.domain)
    try:
        if (
            raw is None or not to.isascii()
        ):  # an internationalised address: the email package writes it, SMTPUTF8 carries it
            message = build(mail, server.sender, server.sender_name, server.domain)
            refused, _ = await smtp.send_message(message, recipients=[to], timeout=server.timeout_s)
        elif PLAIN_ADDRESS.fullmatch(to) and PLAIN_ADDRESS.fullmatch(server.sender):
            refused = await _transaction(smtp, server.sender, to, raw, server.timeout_s)
        else:
            refused, _ = await smtp.sendmail(server.sender, [to], raw, timeout=server.timeout_s)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        return Outcome(
            "transient" if all(400 <= c < 500 for c in codes) else "permanent",
            "; ".join(f"SMTP {r.code} {r.message}" for r in exc.recipients),
        )
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome("transient" if 400 <= exc.code < 500 else "permanent", f"SMTP {exc.code} {exc.message}")
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Outcome("transient", f"SMTP connection: {type(exc).__name__}: {exc}")
    if refused:
        code, text = next(iter(refused.values()))
        return Outcome("transient" if 400 <= code < 500 else "permanent", f"SMTP {code} {text}")
    return DELIVERED


async def _transaction(
    smtp: aiosmtplib.SMTP, sender: str, to: str, raw: bytes, timeout: float
) -> dict[str, aiosmtplib.SMTPResponse]:
    """What `sendmail` does for one plain ASCII recipient (MAIL with SIZE, RCPT, DATA; RSET after a refusal),
    without parsing both addresses twice more per message: they are checked already, and are plain addr-specs."""
    if smtp.is_ehlo_or_helo_needed:
        await smtp.ehlo()
    size = [f"size={len(raw)}".encode()] if smtp.supports_extension("size") else []
    try:
        answer = await smtp.execute_command(b"MAIL", f"FROM:<{sender}>".encode(), *size, timeout=timeout)
        if answer.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(answer.code, answer.message, sender)
        answer = await smtp.execute_command(b"RCPT", f"TO:<{to}>".encode(), timeout=timeout)
        if answer.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            refused = aiosmtplib.SMTPRecipientRefused(answer.code, answer.message, to)
            raise aiosmtplib.SMTPRecipientsRefused([refused])
        await smtp.data(raw, timeout=timeout)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await smtp.rset(timeout=timeout)
        raise
    return {}


async def send_all(server: SmtpServer, mails: list[Mail]) -> list[Outcome]:
    """Send `mails` on one connection, an outcome each; a server that cannot be reached fails them all transiently."""
    try:
        async with client(server) as smtp:
            return [await send(smtp, server, mail) for mail in mails]
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return [Outcome("transient", f"SMTP connection: {type(exc).__name__}: {exc}")] * len(mails)


def client(server: SmtpServer) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=server.host,
        port=server.port,
        timeout=server.timeout_s,
        username=server.username or None,
        password=server.password or None,
        start_tls=server.starttls,
        use_tls=False,
    )
