"""Sends the notices of a confirmed set in batches: ledger-checked, announced, sent on each recipient's channel,
then recorded with the outcome; failures published with their reason and dead-lettered."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog

from services.notifier.channels import Channels
from services.notifier.delivery_ledger import Entry, Ledger, Recorded
from services.notifier.notices import Addressed, Notice, addressed, batches, confirmed_for, due
from services.notifier.pairing import Ready
from services.notifier.recipients import routed
from services.notifier.registry_feed import RegistryFeed
from services.notifier.settings import NotifierSettings
from services.notifier.sink import Letter
from services.notifier.wording import Unrenderable, Wording
from shared.contracts.catalogue import NOTIFICATIONS
from shared.contracts.deadletter import DeadLetter
from shared.contracts.envelope import Event, envelope, utc_now
from shared.contracts.notifications import NotificationDelivered, NotificationFailed, NotificationRequested
from shared.runtime.metrics import NOTICES
from shared.runtime.service import cancel_tasks

SERVICE = "notifier"
log = structlog.get_logger(service=SERVICE)
Publish = Callable[[list[Event]], Awaitable[None]]  # in order; returns once every one is acknowledged
Announcement = tuple[Notice, str, str | None, str | None]  # notice, status, channel, reason


@dataclass
class Tally:
    """What one dispatch did."""

    delivered: int = 0
    failed: int = 0
    skipped: int = 0  # already in the ledger
    unaffected: int = 0  # covered, but entitled to none of the models


class Delivery:
    """For each batch: NotificationRequested, the sends, the ledger, then Delivered/Failed (and dead letters)."""

    def __init__(
        self,
        settings: NotifierSettings,
        registry: RegistryFeed,
        ledger: Ledger,
        channels: Channels,
        wording: Wording,
        publish: Publish,
        dead_letter: Callable[[DeadLetter], Awaitable[object]],
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._ledger = ledger
        self._channels = channels
        self._wording = wording
        self._publish = publish
        self._dead_letter = dead_letter

    async def dispatch(self, ready: Ready) -> Tally:
        if not await self._registry.wait_until(ready.registry_offsets, self._settings.registry_wait_s):
            log.warning(
                "user view behind the assessment's registry offsets; sending with what it has",
                wanted=dict(ready.registry_offsets),
            )
        # A crash after a ledger commit but before its Delivered/Failed went out leaves rows to announce.
        await self._announce_entries(ready, self._ledger.unannounced(ready.key))
        tally = Tally()
        # A batch's Delivered/Failed go out while the next batch is sent (one announcement in flight at most):
        # both wait mostly on the network. Its outcomes are in the ledger first, so a crash loses none of them.
        announcing: asyncio.Task[None] | None = None
        directory = self._registry.directory
        try:
            notices = routed(ready.notices(), directory.contacts, directory.admins)
            if ready.partial:  # some models confirmed: only notices naming nothing else (the rest come later)
                contacts = directory.contacts
                notices = (n for n in notices if confirmed_for(n, contacts.get(n.recipient), ready.confirmed))
            for batch in batches(notices, self._settings.batch_size):
                fresh = due(batch, self._ledger.sent([n.notification_id for n in batch]))
                tally.skipped += len(batch) - len(fresh)
                if fresh:
                    outcomes = await self._send(ready, fresh, tally)
                    if announcing is not None:
                        await announcing
                    announcing = asyncio.create_task(self._announce(ready, outcomes))
            if announcing is not None:
                await announcing
        finally:
            await cancel_tasks(announcing)  # only when a batch failed: its rows stay unannounced for the retry
        log.info(
            "notices dispatched",
            directive_id=ready.key.directive_id,
            revision=ready.key.revision,
            action=ready.key.action,
            delivered=tally.delivered,
            failed=tally.failed,
            skipped=tally.skipped,
            unaffected=tally.unaffected,
        )
        return tally

    async def _send(self, ready: Ready, notices: list[Notice], tally: Tally) -> list[Announcement]:
        """Requested, the sends, the ledger; returns the outcomes to announce."""
        split = addressed(notices, self._registry.directory.contacts)
        letters, recorded = self._letters(split)
        # Requested goes out while the channels send (both wait on the network); it is on the topic before the
        # batch's Delivered/Failed, which are published only once this returns.
        async with asyncio.TaskGroup() as both:  # a failed publish cancels the sends (retried with the dispatch)
            now = utc_now()  # one moment per batch: its notices are requested (and later told) together
            both.create_task(self._publish_all([self._requested(ready, letter, now) for letter in letters]))
            sending = both.create_task(self._channels.deliver(letters))
        for letter, (channel, outcome) in zip(letters, sending.result(), strict=True):
            delivered = outcome.verdict == "delivered"
            reason = None if delivered else f"{channel}: {outcome.verdict}: {outcome.reason}"
            recorded.append(Recorded(letter.notice, "delivered" if delivered else "failed", channel, reason))
        self._ledger.record(recorded)
        counted = Counter((r.channel or "none", r.status) for r in recorded)
        for (channel, status), count in counted.items():  # bounded labels: the channel (none: failed before one
            NOTICES.labels(channel, status).inc(count)  # was chosen) and the outcome
        delivered = sum(r.status == "delivered" for r in recorded)
        before = tally.delivered + tally.failed
        tally.delivered += delivered
        tally.failed += len(recorded) - delivered
        tally.unaffected += split.unaffected
        every = self._settings.progress_every
        if (tally.delivered + tally.failed) // every > before // every:
            log.info("notices progress", directive_id=ready.key.directive_id, sent=tally.delivered + tally.failed)
        return [(r.notice, r.status, r.channel, r.reason) for r in recorded]

    def _letters(self, split: Addressed) -> tuple[list[Letter], list[Recorded]]:
        """Rendered letters, and the notices that failed before any channel (no address, a broken template)."""
        failed = [Recorded(notice, "failed", None, reason) for notice, reason in split.failed]
        letters = []
        for notice, contact in split.deliverable:
            try:
                rendered = self._wording.render(notice, contact.locale)
                letters.append(Letter(notice, contact, *rendered, self._wording.locale_for(contact.locale)))
            except Unrenderable as exc:
                failed.append(Recorded(notice, "failed", None, str(exc)))
        return letters, failed

    async def _announce(self, ready: Ready, outcomes: list[Announcement]) -> None:
        """Delivered/Failed for recorded outcomes, and a dead letter for each failure; then marked announced."""
        events: list[Event] = []
        now = utc_now()
        for notice, status, channel, reason in outcomes:
            if status == "delivered":
                events.append(self._delivered(ready, notice, channel or "email", now))
            else:
                events.append(self._failed(ready, notice, reason or "unknown", now))
        await self._publish_all(events)
        letters = [self._letter_of(e) for e in events if isinstance(e, NotificationFailed)]
        await asyncio.gather(*(self._dead_letter(letter) for letter in letters))
        self._ledger.mark_announced(notice.notification_id for notice, *_ in outcomes)

    def _letter_of(self, failed: NotificationFailed) -> DeadLetter:
        """A failed notice set aside on the dead-letter topic: the NotificationFailed itself, with its reason."""
        return DeadLetter(
            **envelope(SERVICE, correlation_id=failed.correlation_id, causation_id=failed.event_id),
            consumer=self._settings.group_id,
            topic=NOTIFICATIONS.name,
            partition=0,  # not read from a record: the notice failed on its channel
            offset=0,
            key_b64=base64.b64encode(str(failed.recipient).encode()).decode(),
            value_b64=base64.b64encode(failed.model_dump_json().encode()).decode(),
            reason=failed.reason,
        )

    async def _announce_entries(self, ready: Ready, entries: list[Entry]) -> None:
        notices = [
            (Notice(e.notification_id, e.recipient, ready.key.directive_id, ready.key.revision, e.action, ()), e)
            for e in entries
        ]
        await self._announce(ready, [(n, e.status, e.channel, e.reason) for n, e in notices])

    async def _publish_all(self, messages: Iterable[Event]) -> None:
        await self._publish(list(messages))

    def _envelope(self, ready: Ready, notice: Notice, now: datetime) -> dict[str, object]:
        return {
            **envelope(SERVICE, occurred_at=now, correlation_id=notice.directive_id, causation_id=ready.causation_id),
            "notification_id": notice.notification_id,
            "recipient": notice.recipient,
            "directive_id": notice.directive_id,
            "revision": notice.revision,
            "action": notice.action,
        }

    def _requested(self, ready: Ready, letter: Letter, now: datetime) -> NotificationRequested:
        return NotificationRequested(
            **self._envelope(ready, letter.notice, now),
            email=letter.contact.email,
            models=list(letter.notice.models),
            channel=self._channels.channel_for(letter).name,
        )

    def _delivered(self, ready: Ready, notice: Notice, channel: str, now: datetime) -> NotificationDelivered:
        return NotificationDelivered(**self._envelope(ready, notice, now), channel=channel)

    def _failed(self, ready: Ready, notice: Notice, reason: str, now: datetime) -> NotificationFailed:
        return NotificationFailed(**self._envelope(ready, notice, now), reason=reason)
