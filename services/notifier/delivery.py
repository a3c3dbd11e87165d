"""Sends the notices of a confirmed set: ledger-checked, announced, written to the sink, in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

from services.notifier.delivery_ledger import Entry, Ledger
from services.notifier.notices import NOTICE_ACTION, Notice, addressed, batches, due, notices_for
from services.notifier.pairing import Ready
from services.notifier.registry_feed import RegistryFeed
from services.notifier.settings import NotifierSettings
from services.notifier.sink import Letter, NoticeSink
from services.notifier.wording import Wording
from shared.contracts.envelope import Event, envelope
from shared.contracts.notifications import NotificationDelivered, NotificationFailed, NotificationRequested
from shared.runtime.metrics import NOTICES

SERVICE = "notifier"
log = structlog.get_logger(service=SERVICE)
Publish = Callable[[Event], Awaitable[None]]


@dataclass
class Tally:
    """What one dispatch did."""

    delivered: int = 0
    failed: int = 0
    skipped: int = 0


class Delivery:
    """For each batch: NotificationRequested, then ledger+sink in one step, then Delivered/Failed."""

    def __init__(
        self,
        settings: NotifierSettings,
        registry: RegistryFeed,
        ledger: Ledger,
        sink: NoticeSink,
        wording: Wording,
        publish: Publish,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._ledger = ledger
        self._sink = sink
        self._wording = wording
        self._publish = publish

    async def dispatch(self, ready: Ready) -> Tally:
        if not await self._registry.wait_until(ready.registry_offsets, self._settings.registry_wait_s):
            log.warning(
                "user view behind the assessment's registry offsets; sending with what it has",
                wanted=dict(ready.registry_offsets),
            )
        # A crash after a ledger commit but before its Delivered/Failed went out leaves rows to announce.
        await self._announce_entries(ready, self._ledger.unannounced(ready.key))
        tally = Tally()
        for batch in batches(notices_for(ready.key, ready.sets), self._settings.batch_size):
            fresh = due(batch, self._ledger.sent([n.notification_id for n in batch]))
            tally.skipped += len(batch) - len(fresh)
            if fresh:
                await self._send(ready, fresh, tally)
        log.info(
            "notices dispatched",
            directive_id=ready.key.directive_id,
            revision=ready.key.revision,
            action=ready.key.action,
            delivered=tally.delivered,
            failed=tally.failed,
            skipped=tally.skipped,
        )
        return tally

    async def _send(self, ready: Ready, notices: list[Notice], tally: Tally) -> None:
        deliverable, failed = addressed(notices, self._registry.directory.contacts)
        letters = [Letter(n, c, *self._wording.render(n)) for n, c in deliverable]
        await self._publish_all(self._requested(ready, letter) for letter in letters)
        self._ledger.record(letters, failed, self._sink)
        NOTICES.labels(self._sink.channel, "delivered").inc(len(letters))
        NOTICES.labels(self._sink.channel, "failed").inc(len(failed))
        outcomes: list[Event] = [self._delivered(ready, letter.notice) for letter in letters]
        outcomes += [self._failed(ready, notice, reason) for notice, reason in failed]
        await self._publish_all(outcomes)
        self._ledger.mark_announced(n.notification_id for n in notices)
        before = tally.delivered + tally.failed
        tally.delivered += len(letters)
        tally.failed += len(failed)
        every = self._settings.progress_every
        if (tally.delivered + tally.failed) // every > before // every:
            log.info("notices progress", directive_id=ready.key.directive_id, sent=tally.delivered + tally.failed)

    async def _announce_entries(self, ready: Ready, entries: list[Entry]) -> None:
        outcomes: list[Event] = []
        for entry in entries:
            notice = Notice(
                entry.notification_id,
                entry.recipient,
                ready.key.directive_id,
                ready.key.revision,
                NOTICE_ACTION[ready.key.action],
                (),
            )
            outcomes.append(
                self._delivered(ready, notice)
                if entry.status == "delivered"
                else self._failed(ready, notice, entry.reason or "unknown")
            )
        await self._publish_all(outcomes)
        self._ledger.mark_announced(e.notification_id for e in entries)

    async def _publish_all(self, messages: Iterable[Event]) -> None:
        """Publish concurrently in groups; each group is awaited (acks=all) before the next starts."""
        pending = list(messages)
        size = self._settings.publish_group
        for i in range(0, len(pending), size):
            await asyncio.gather(*(self._publish(m) for m in pending[i : i + size]))

    def _envelope(self, ready: Ready, notice: Notice) -> dict[str, object]:
        return {
            **envelope(SERVICE, correlation_id=notice.directive_id, causation_id=ready.causation_id),
            "notification_id": notice.notification_id,
            "recipient": notice.recipient,
            "directive_id": notice.directive_id,
            "revision": notice.revision,
            "action": notice.action,
        }

    def _requested(self, ready: Ready, letter: Letter) -> NotificationRequested:
        return NotificationRequested(
            **self._envelope(ready, letter.notice),
            email=letter.contact.email,
            models=list(letter.notice.models),
            channel=self._sink.channel,
        )

    def _delivered(self, ready: Ready, notice: Notice) -> NotificationDelivered:
        return NotificationDelivered(**self._envelope(ready, notice), channel=self._sink.channel)

    def _failed(self, ready: Ready, notice: Notice, reason: str) -> NotificationFailed:
        return NotificationFailed(**self._envelope(ready, notice), reason=reason)
