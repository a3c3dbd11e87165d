"""Which channel each recipient is told through: its organisation's webhook when one is configured, else email
(SMTP in production, the outbox file in development)."""

from __future__ import annotations

import asyncio

from services.notifier.email_channel import EmailChannel, server_of
from services.notifier.retry import Outcome
from services.notifier.settings import NotifierSettings
from services.notifier.sink import Channel, Letter, OutboxSink
from services.notifier.webhook_channel import WebhookChannel
from services.notifier.webhooks import UrlPolicy


class Channels:
    """Routes letters to their channels, sends every channel's share at once, answers in the letters' order."""

    def __init__(self, email: Channel, webhook: WebhookChannel) -> None:
        self.email = email
        self.webhook = webhook

    def channel_for(self, letter: Letter) -> Channel:
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
        await asyncio.gather(self.email.close(), self.webhook.close())


def channels_of(settings: NotifierSettings) -> Channels:
    """The channels the settings configure (nothing connects until the first send)."""
    email: Channel = (
        OutboxSink(settings.outbox)
        if settings.email_channel == "outbox"
        else EmailChannel(server_of(settings), settings.smtp)
    )
    policy = UrlPolicy(tuple(h.lower() for h in settings.webhook_allowed_hosts))
    return Channels(email, WebhookChannel(settings.webhooks, policy, settings.webhook))
