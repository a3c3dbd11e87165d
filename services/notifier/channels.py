"""Which channel each recipient is told through: employees through the internal channel when one is configured,
others through their organisation's webhook when one is configured, else email (SMTP in production, the outbox
file in development)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from services.notifier.email_channel import EmailChannel, server_of
from services.notifier.notices import Contact
from services.notifier.retry import Outcome
from services.notifier.settings import NotifierSettings
from services.notifier.sink import Channel, Letter, OutboxSink
from services.notifier.webhook_channel import WebhookChannel
from services.notifier.webhooks import UrlPolicy

INTERNAL = "internal"  # the endpoint key of the internal channel


class InternalChannel:
    """Employees' notices, signed and POSTed to the provider's own endpoint (a channel of its own)."""

    name = INTERNAL

    def __init__(self, webhook: WebhookChannel) -> None:
        self._webhook = webhook

    def serves(self, contact: Contact) -> bool:
        return contact.account_type == "employee"

    async def deliver(self, letters: list[Letter]) -> list[Outcome]:
        routed = [replace(letter, contact=replace(letter.contact, organisation=INTERNAL)) for letter in letters]
        return await self._webhook.deliver(routed)

    async def close(self) -> None:
        await self._webhook.close()


class Channels:
    """Routes letters to their channels, sends every channel's share at once, answers in the letters' order."""

    def __init__(self, email: Channel, webhook: WebhookChannel, internal: InternalChannel | None = None) -> None:
        self.email = email
        self.webhook = webhook
        self.internal = internal

    def channel_for(self, letter: Letter) -> Channel:
        if self.internal is not None and self.internal.serves(letter.contact):
            return self.internal
        return self.webhook if self.webhook.serves(letter.contact) else self.email

    async def deliver(self, letters: list[Letter]) -> list[tuple[str, Outcome]]:
        """(channel name, outcome) per letter."""
        groups: dict[str, tuple[Channel, list[int]]] = {}
        for index, letter in enumerate(letters):
            channel = self.channel_for(letter)
            groups.setdefault(channel.name, (channel, []))[1].append(index)
        results = await asyncio.gather(*(c.deliver([letters[i] for i in idx]) for c, idx in groups.values()))
        answers: list[tuple[str, Outcome]] = [("", Outcome("permanent", "not routed"))] * len(letters)
        for (channel, indices), outcomes in zip(groups.values(), results, strict=True):
            for index, outcome in zip(indices, outcomes, strict=True):
                answers[index] = (channel.name, outcome)
        return answers

    async def close(self) -> None:
        internal = [self.internal.close()] if self.internal is not None else []
        await asyncio.gather(self.email.close(), self.webhook.close(), *internal)


def channels_of(settings: NotifierSettings) -> Channels:
    """The channels the settings configure (nothing connects until the first send)."""
    email: Channel = (
        OutboxSink(settings.outbox)
        if settings.email_channel == "outbox"
        else EmailChannel(server_of(settings), settings.smtp)
    )
    policy = UrlPolicy(tuple(h.lower() for h in settings.webhook_allowed_hosts))
    internal = (
        InternalChannel(WebhookChannel({INTERNAL: settings.internal_webhook}, policy, settings.webhook))
        if settings.internal_webhook is not None
        else None
    )
    return Channels(email, WebhookChannel(settings.webhooks, policy, settings.webhook), internal)
