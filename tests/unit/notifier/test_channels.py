"""Dispatching over the real channels: aiosmtpd and a webhook receiver on loopback, each bad input failing
only its own recipient with a clear reason and a dead letter, everyone else still told."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from pyroaring import BitMap

from devtools.hooks import HookReceiver
from devtools.mailbox import Mailbox
from services.notifier.channels import channels_of
from services.notifier.delivery import Delivery
from services.notifier.delivery_ledger import Ledger, open_database
from services.notifier.directory import UserDirectory
from services.notifier.notices import Contact
from services.notifier.pairing import Ready
from services.notifier.settings import ChannelLimits, NotifierSettings, WebhookEndpoint
from services.notifier.smtp import message_id
from services.notifier.webhooks import new_secret
from services.notifier.wording import TEMPLATES, Wording
from shared.contracts.envelope import Event
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-5", 2, "restrict")
SECRET = new_secret()
FAST = ChannelLimits(concurrency=4, timeout_s=0.5, attempts=3, backoff_base_s=0.01, backoff_cap_s=0.05)
MODELS = frozenset({"fable-5", "mythos-5"})


class FakeRegistry:
    def __init__(self, contacts: dict[int, Contact]) -> None:
        self.directory = UserDirectory()
        self.directory.contacts.update(contacts)

    async def wait_until(self, offsets: Mapping[int, int], timeout_s: float) -> bool:
        return True


class Outlet:
    def __init__(self) -> None:
        self.messages: list[Event] = []
        self.dead_letters: list[Event] = []

    async def __call__(self, messages: list[Event]) -> None:
        self.messages.extend(messages)

    async def dead(self, letter: Event) -> None:
        self.dead_letters.append(letter)

    def of(self, kind: str) -> dict[int, Event]:
        return {m.recipient: m for m in self.messages if m.type == kind}  # type: ignore[attr-defined]


def _contact(email: str, locale: str = "en", org: str | None = None, models: frozenset = MODELS) -> Contact:
    return Contact(email, locale, models, org)


@pytest.fixture
async def receiver() -> AsyncIterator[HookReceiver]:
    hooks = await HookReceiver([SECRET], status={"gone": 410}, hang={"slow"}).start()
    yield hooks
    await hooks.stop()


@pytest.fixture
def mailbox() -> AsyncIterator[Mailbox]:
    with Mailbox(refuse={"nobody@example.com": "550 5.1.1 No such user"}, busy_once={"busy@example.com"}) as box:
        yield box


def _settings(tmp_path: Path, mailbox: Mailbox, receiver: HookReceiver) -> NotifierSettings:
    return NotifierSettings(
        state_dir=tmp_path,
        batch_size=50,
        smtp_port=mailbox.port,
        smtp_sender="notices@provider.example",
        smtp=FAST,
        webhook=FAST,
        webhooks={
            "org-ok": WebhookEndpoint(url=receiver.url("hook"), secrets=[SECRET]),
            "org-gone": WebhookEndpoint(url=receiver.url("gone"), secrets=[SECRET]),
            "org-slow": WebhookEndpoint(url=receiver.url("slow"), secrets=[SECRET]),
            "org-outside": WebhookEndpoint(url="https://hooks.elsewhere.example/x", secrets=[SECRET]),
            "org-plain": WebhookEndpoint(url="http://hooks.partner.example/x", secrets=[SECRET]),
        },
        webhook_allowed_hosts=["127.0.0.1", "partner.example"],
    )


async def _dispatch(settings: NotifierSettings, contacts: dict[int, Contact], wording: Wording) -> Outlet:
    outlet = Outlet()
    channels = channels_of(settings)
    ledger = Ledger(open_database(settings.home / "notifier.db"))
    registry = FakeRegistry(contacts)
    delivery = Delivery(settings, registry, ledger, channels, wording, outlet, outlet.dead)  # type: ignore[arg-type]
    everyone = BitMap(contacts)
    try:
        await delivery.dispatch(Ready(KEY, {"fable-5": everyone, "mythos-5": BitMap([1])}, "enforced-9", {}))
    finally:
        await channels.close()
    return outlet


async def test_every_bad_input_fails_only_its_recipient_and_everyone_else_is_told(
    tmp_path: Path, mailbox: Mailbox, receiver: HookReceiver
) -> None:
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    (tmp_path / "templates" / "de").mkdir()
    for part in ("subject", "body"):
        (tmp_path / "templates" / "de" / f"restricted.{part}.j2").write_text("{{ undefined_value }}")
    contacts = {
        1: _contact("ada@example.com"),
        2: _contact("not-an-address"),
        3: _contact("nobody@example.com"),
        4: _contact("busy@example.com"),
        5: _contact("fr@example.com", "fr"),
        6: _contact("unknown@example.com", "tlh-XX"),  # no such locale: English
        7: _contact("broken@example.com", "de"),  # its template fails
        8: _contact("m8@example.com", org="org-ok"),
        9: _contact("m9@example.com", org="org-gone"),
        10: _contact("m10@example.com", org="org-slow"),
        11: _contact("m11@example.com", org="org-outside"),
        12: _contact("m12@example.com", org="org-plain"),
        13: _contact("none@example.com", models=frozenset({"lyric-4"})),  # covered, entitled to none: no notice
    }
    outlet = await _dispatch(_settings(tmp_path, mailbox, receiver), contacts, Wording(tmp_path / "templates"))

    delivered = outlet.of("NotificationDelivered")
    assert {r: m.channel for r, m in delivered.items()} == {  # type: ignore[attr-defined]
        1: "email",
        4: "email",
        5: "email",
        6: "email",
        8: "webhook",
    }
    reasons = {r: m.reason for r, m in outlet.of("NotificationFailed").items()}  # type: ignore[attr-defined]
    assert set(reasons) == {2, 3, 7, 9, 10, 11, 12}
    assert "invalid email address" in reasons[2] and "permanent" in reasons[2]
    assert "SMTP 550" in reasons[3]
    assert "de/restricted failed to render" in reasons[7]
    assert reasons[9] == "webhook: permanent: HTTP 410"
    assert "gave up after 3 attempts: timed out" in reasons[10]
    assert "not in the allow-list" in reasons[11]
    assert "must be https" in reasons[12]
    assert 13 not in outlet.of("NotificationRequested")
    assert {d.reason for d in outlet.dead_letters} == set(reasons.values())  # type: ignore[attr-defined]

    mails = {m.to: m for m in mailbox.unique().values()}
    assert set(mails) == {"ada@example.com", "busy@example.com", "fr@example.com", "unknown@example.com"}
    assert mails["ada@example.com"].message_id == message_id("EXP-5:2:restricted:1", "provider.example")
    assert mails["ada@example.com"].content_type == "multipart/alternative"
    assert mails["fr@example.com"].subject == "L'accès à fable-5 a été restreint"
    assert (mails["unknown@example.com"].language, mails["unknown@example.com"].subject) == (
        "en",
        "Access to fable-5 has been restricted",
    )
    [(webhook_id, body)] = receiver.received.items()
    assert webhook_id == "EXP-5:2:restricted:8" and body["type"] == "countermand.notice.restricted"
    assert body["data"]["models"] == ["fable-5"] and receiver.refused == []


async def test_a_crash_between_send_and_record_sends_again_with_the_same_ids(
    tmp_path: Path, mailbox: Mailbox, receiver: HookReceiver
) -> None:
    """The receiving side deduplicates: SMTP by Message-ID, webhooks by webhook-id."""
    settings = _settings(tmp_path, mailbox, receiver)
    contacts = {1: _contact("ada@example.com"), 8: _contact("m8@example.com", org="org-ok")}
    await _dispatch(settings, contacts, Wording())
    (settings.home / "notifier.db").unlink()  # as if the ledger rows never committed
    await _dispatch(settings, contacts, Wording())
    assert mailbox.count() == 2 and len(mailbox.unique()) == 1
    assert receiver.copies == 2 and list(receiver.received) == ["EXP-5:2:restricted:8"]
