"""Dispatching a confirmed set with hand-written fakes for the registry and the publisher."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from pyroaring import BitMap

from services.notifier.channels import Channels
from services.notifier.delivery import Delivery
from services.notifier.delivery_ledger import Ledger, open_database
from services.notifier.directory import UserDirectory
from services.notifier.notices import Contact
from services.notifier.pairing import Ready
from services.notifier.settings import NotifierSettings
from services.notifier.sink import OutboxSink
from services.notifier.webhook_channel import WebhookChannel
from services.notifier.webhooks import UrlPolicy
from services.notifier.wording import Wording
from shared.contracts.envelope import Event
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-7", 1, "restrict")
READY = Ready(KEY, {"fable-5": BitMap([1, 2, 3]), "mythos-5": BitMap([3])}, "enforced-1", {})


class FakeRegistry:
    def __init__(self, contacts: dict[int, Contact]) -> None:
        self.directory = UserDirectory()
        self.directory.contacts.update(contacts)

    async def wait_until(self, offsets: Mapping[int, int], timeout_s: float) -> bool:
        return True


class Outlet:
    """Collects published messages; can be told to fail once the n-th outcome message is reached."""

    def __init__(self, fail_on_type: str | None = None) -> None:
        self.messages: list[Event] = []
        self.dead_letters: list[Event] = []
        self.fail_on_type = fail_on_type

    async def __call__(self, messages: list[Event]) -> None:
        for message in messages:  # published in order: those before a failure are on the topic
            if getattr(message, "type", None) == self.fail_on_type:
                raise ConnectionError("broker unavailable")
            self.messages.append(message)

    async def dead(self, letter: Event) -> None:
        self.dead_letters.append(letter)

    def types(self) -> list[str]:
        return [m.type for m in self.messages]


def _delivery(tmp_path: Path, outlet: Outlet) -> tuple[Delivery, Ledger, OutboxSink]:
    settings = NotifierSettings(state_dir=tmp_path, batch_size=2, publish_group=2, email_channel="outbox")
    ledger = Ledger(open_database(settings.home / "notifier.db"))
    sink = OutboxSink(settings.outbox)
    channels = Channels(sink, WebhookChannel({}, UrlPolicy(), settings.webhook))
    registry = FakeRegistry({1: Contact("one@example.com", "en"), 3: Contact("three@example.com", "en")})
    delivery = Delivery(settings, registry, ledger, channels, Wording(), outlet, outlet.dead)  # type: ignore[arg-type]
    return delivery, ledger, sink


async def test_requested_before_the_channel_and_delivered_or_failed_after(tmp_path: Path) -> None:
    outlet = Outlet()
    delivery, _, sink = _delivery(tmp_path, outlet)
    tally = await delivery.dispatch(READY)
    assert (tally.delivered, tally.failed) == (2, 1)
    assert [line["recipient"] for line in sink.records()] == [1, 3]
    by_recipient = {(m.recipient, m.type) for m in outlet.messages}  # type: ignore[attr-defined]
    assert by_recipient == {
        (1, "NotificationRequested"),
        (1, "NotificationDelivered"),
        (2, "NotificationFailed"),
        (3, "NotificationRequested"),
        (3, "NotificationDelivered"),
    }
    assert {(m.producer, m.correlation_id, m.causation_id) for m in outlet.messages} == {
        ("notifier", "EXP-7", "enforced-1")
    }
    order = [(m.recipient, m.type) for m in outlet.messages]  # type: ignore[attr-defined]
    for recipient in (1, 3):  # each recipient's request before its outcome (a batch's outcomes may overlap the next)
        assert order.index((recipient, "NotificationRequested")) < order.index((recipient, "NotificationDelivered"))
    assert {m.channel for m in outlet.messages if m.type != "NotificationFailed"} == {"outbox"}  # type: ignore[attr-defined]
    [letter] = outlet.dead_letters
    assert letter.topic == "notifications.v1" and "no record" in letter.reason  # type: ignore[attr-defined]


async def test_a_second_dispatch_sends_and_publishes_nothing(tmp_path: Path) -> None:
    outlet = Outlet()
    delivery, _, sink = _delivery(tmp_path, outlet)
    await delivery.dispatch(READY)
    published = len(outlet.messages)
    tally = await delivery.dispatch(READY)
    assert (tally.delivered, tally.failed, tally.skipped) == (0, 0, 3)
    assert len(outlet.messages) == published and len(sink.records()) == 2


async def test_outcomes_lost_in_a_crash_are_announced_on_the_retry_without_resending(tmp_path: Path) -> None:
    failing = Outlet(fail_on_type="NotificationDelivered")
    delivery, ledger, sink = _delivery(tmp_path, failing)
    with pytest.raises(ConnectionError):
        await delivery.dispatch(READY)
    sent = [line["recipient"] for line in sink.records()]
    assert sent[0] == 1 and set(sent) <= {1, 3}  # the first batch sent and recorded, not announced (the next
    assert ledger.unannounced(KEY)  # batch may have been sent while the first one's announcement failed)
    retry = Outlet()
    delivery, ledger, sink = _delivery(tmp_path, retry)
    await delivery.dispatch(READY)
    assert [line["recipient"] for line in sink.records()] == [1, 3]
    outcomes = {(m.recipient, m.type) for m in retry.messages}
    assert {r for r, kind in outcomes if kind == "NotificationDelivered"} == {1, 3}
    assert (2, "NotificationFailed") in outcomes and (1, "NotificationRequested") not in outcomes
    assert ledger.unannounced(KEY) == []
