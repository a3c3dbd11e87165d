"""The email channel: notices sent over SMTP (smtp.py) on a few connections, each opened on first use and
again after a failure; the Message-ID derives from the notice's idempotency key."""

from __future__ import annotations

import contextlib
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


class EmailChannel:
    """Email to the configured SMTP server; `concurrency` connections, `rate_per_s` messages a second."""

    name = "email"

    def __init__(self, server: SmtpServer, limits: ChannelLimits) -> None:
        self._server = server
        self._limits = limits
        self._throttle = Throttle(limits.rate_per_s)

    async def deliver(self, letters: list[Letter]) -> list[Outcome]:
        mails = [mail_of(letter) for letter in letters]
        return await settle_all(len(mails), lambda: _Connection(self._server, mails), self._limits, self._throttle)

    async def close(self) -> None:
        """Nothing stays open between batches."""


class _Connection:
    """One worker's SMTP session."""

    def __init__(self, server: SmtpServer, mails: list[Mail]) -> None:
        self._server = server
        self._mails = mails
        self._smtp: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> Attempt:
        return self.attempt

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def attempt(self, index: int) -> Outcome:
        if self._smtp is None:
            smtp = client(self._server)
            try:
                await smtp.connect()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return Outcome("transient", f"SMTP connection: {type(exc).__name__}: {exc}")
            self._smtp = smtp
        outcome = await send(self._smtp, self._server, self._mails[index])
        if outcome.verdict == "transient":
            await self._close()  # a fresh connection for the next try: this one may be broken
        return outcome

    async def _close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await smtp.quit()
            smtp.close()
