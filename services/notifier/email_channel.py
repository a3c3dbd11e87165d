"""The email channel: notices sent over SMTP (smtp.py) on a pool of persistent connections, each opened on first
use, kept across batches while healthy, replaced after a failure; the Message-ID derives from the idempotency key."""

from __future__ import annotations

import contextlib
import time
from types import TracebackType

import aiosmtplib

from services.notifier.pacing import Attempt, Throttle, settle_all
from services.notifier.retry import Outcome
from services.notifier.settings import ChannelLimits, NotifierSettings
from services.notifier.sink import Letter
from services.notifier.smtp import Mail, SmtpServer, client, send


def server_of(settings: NotifierSettings) -> SmtpServer:
    return SmtpServer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_sender,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value(),
        starttls=settings.smtp_starttls,
        timeout_s=settings.smtp.timeout_s,
    )


def mail_of(letter: Letter) -> Mail:
    return Mail(
        letter.notice.notification_id,
        letter.contact.email,
        letter.subject,
        letter.body,
        letter.html,
        letter.language,
        letter.attachment,
    )


IDLE_S = 30.0  # a pooled connection unused this long is closed rather than reused (servers drop idle sessions)


class EmailChannel:
    """Email to the configured SMTP server; `concurrency` connections, `rate_per_s` messages a second.

    Connections outlive a batch: each worker takes one from the pool (or opens one on its first send) and gives
    it back when the batch is done, so a stream of batches pays the TCP, greeting, EHLO (and STARTTLS, AUTH)
    round trips once per connection rather than once per batch."""

    name = "email"

    def __init__(self, server: SmtpServer, limits: ChannelLimits) -> None:
        self._server = server
        self._limits = limits
        self._throttle = Throttle(limits.rate_per_s)
        self._idle: list[tuple[float, aiosmtplib.SMTP]] = []  # (given back at, connection)

    async def deliver(self, letters: list[Letter]) -> list[Outcome]:
        mails = [mail_of(letter) for letter in letters]
        return await settle_all(len(mails), lambda: _Connection(self, mails), self._limits, self._throttle)

    def _take(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            since, smtp = self._idle.pop()
            if smtp.is_connected and time.monotonic() - since < IDLE_S:
                return smtp
            smtp.close()
        return None

    def _give_back(self, smtp: aiosmtplib.SMTP) -> None:
        if smtp.is_connected and len(self._idle) < self._limits.concurrency:
            self._idle.append((time.monotonic(), smtp))
        else:
            smtp.close()

    async def close(self) -> None:
        """QUIT every pooled connection."""
        idle, self._idle = self._idle, []
        for _, smtp in idle:
            await _quit(smtp)


class _Connection:
    """One worker's SMTP session: a pooled connection, or a new one on its first send."""

    def __init__(self, channel: EmailChannel, mails: list[Mail]) -> None:
        self._channel = channel
        self._server = channel._server
        self._mails = mails
        self._smtp: aiosmtplib.SMTP | None = None
        self._sending = False

    async def __aenter__(self) -> Attempt:
        self._smtp = self._channel._take()
        return self.attempt

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        if self._sending:  # cancelled mid-transaction (the service stops): the session's state is unknown
            smtp.close()
        else:  # the batch is done (its idle workers are cancelled between two sends): reusable
            self._channel._give_back(smtp)

    async def attempt(self, index: int) -> Outcome:
        if self._smtp is None:
            smtp = client(self._server)
            try:
                await smtp.connect()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return Outcome("transient", f"SMTP connection: {type(exc).__name__}: {exc}")
            self._smtp = smtp
        self._sending = True
        outcome = await send(self._smtp, self._server, self._mails[index])
        self._sending = False
        if outcome.verdict == "transient":
            await self._close()  # a fresh connection for the next try: this one may be broken
        return outcome

    async def _close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            await _quit(smtp)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if smtp.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await smtp.quit()
    smtp.close()
