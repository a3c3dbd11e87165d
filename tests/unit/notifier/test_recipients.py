"""Who is told: enterprise members summed up in one digest per organisation administrator (counts per model,
member list attached), employees through the internal channel, everyone else one by one."""

from __future__ import annotations

import email
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pyroaring import BitMap

from devtools.hooks import HookReceiver
from devtools.mailbox import Mailbox
from services.notifier.channels import channels_of
from services.notifier.delivery import Delivery
from services.notifier.delivery_ledger import Ledger, open_database
from services.notifier.notices import Contact, notices_for
from services.notifier.pairing import Ready
from services.notifier.recipients import counts, member_list, routed
from services.notifier.settings import NotifierSettings, WebhookEndpoint
from services.notifier.smtp import Mail, build
from services.notifier.webhooks import new_secret
from services.notifier.wording import Wording
from shared.contracts.impact import AssessmentKey
from tests.unit.notifier.test_channels import FAST, FakeRegistry, Outlet

KEY = AssessmentKey("EXP-7", 2, "restrict")
BOTH = frozenset({"fable-5", "mythos-5"})
SECRET = new_secret()


def _people() -> dict[int, Contact]:
    return {
        1: Contact("consumer@example.com", "en", BOTH),
        2: Contact("admin@acme.example", "fr", frozenset(), "acme", "enterprise_member", org_admin=True),
        3: Contact("m3@acme.example", "en", BOTH, "acme", "enterprise_member"),
        4: Contact("m4@acme.example", "en", frozenset({"fable-5"}), "acme", "enterprise_member"),
        5: Contact("m5@acme.example", "en", frozenset({"lyric-4"}), "acme", "enterprise_member"),  # loses nothing
        6: Contact("m6@solo.example", "en", BOTH, "solo", "enterprise_member"),  # organisation without admin
        7: Contact("staff@provider.example", "en", BOTH, None, "employee"),
    }


def _registry() -> FakeRegistry:
    registry = FakeRegistry({})
    for user, contact in _people().items():
        registry.directory.upsert(user, contact)
    return registry


def test_members_are_folded_into_one_digest_per_administrator() -> None:
    directory = _registry().directory
    sets = {"fable-5": BitMap(range(1, 8)), "mythos-5": BitMap([3, 4, 7])}
    told = {n.recipient: n for n in routed(notices_for(KEY, sets), directory.contacts, directory.admins)}
    assert sorted(told) == [1, 2, 6, 7]  # members 3, 4, 5 are not told one by one; 6's organisation has no admin
    digest = told[2]
    assert digest.notification_id == "EXP-7:2:restricted:2:org-acme"
    assert dict(digest.members) == {3: ("fable-5", "mythos-5"), 4: ("fable-5",)}  # what each member held
    assert counts(digest) == {"fable-5": 2, "mythos-5": 1}
    assert member_list(digest) == "user_id,models\n3,fable-5 mythos-5\n4,fable-5\n"


def test_a_digest_is_worded_for_the_administrator_in_their_language() -> None:
    directory = _registry().directory
    sets = {"fable-5": BitMap([3, 4]), "mythos-5": BitMap([3])}
    [digest] = routed(notices_for(KEY, sets), directory.contacts, directory.admins)
    subject, body, _ = Wording().render(digest, "en")
    assert subject == "2 members of your organisation lost access to fable-5, mythos-5"
    assert "  - fable-5: 2 members\n  - mythos-5: 1 member\n" in body
    sujet, corps, _ = Wording().render(digest, "fr")
    assert sujet.startswith("2 membres de votre organisation ont perdu") and "fable-5 : 2 membres" in corps


def test_the_digest_email_carries_the_member_list_as_a_csv_attachment() -> None:
    mail = Mail("k", "admin@acme.example", "s", "text", "<p>html</p>", "en", ("members.csv", "user_id,models\n3,x\n"))
    message = email.message_from_bytes(bytes(build(mail, "n@p.example", "Notices", "p.example")))
    [attachment] = [part for part in message.walk() if part.get_filename()]
    assert attachment.get_filename() == "members.csv" and attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True).decode() == "user_id,models\n3,x\n"


@pytest.fixture
async def receiver() -> AsyncIterator[HookReceiver]:
    hooks = await HookReceiver([SECRET]).start()
    yield hooks
    await hooks.stop()


async def test_over_real_channels_the_admin_gets_one_digest_and_employees_the_internal_channel(
    tmp_path: Path, receiver: HookReceiver
) -> None:
    with Mailbox() as box:
        settings = NotifierSettings(
            state_dir=tmp_path,
            smtp_port=box.port,
            smtp=FAST,
            webhook=FAST,
            internal_webhook=WebhookEndpoint(url=receiver.url("internal"), secrets=[SECRET]),
            webhook_allowed_hosts=["127.0.0.1"],
        )
        outlet, channels = Outlet(), channels_of(settings)
        ledger = Ledger(open_database(settings.home / "notifier.db"))
        delivery = Delivery(settings, _registry(), ledger, channels, Wording(), outlet, outlet.dead)  # type: ignore[arg-type]
        ready = Ready(KEY, {"fable-5": BitMap(range(1, 8)), "mythos-5": BitMap([3])}, "enforced-1", {})
        try:
            await delivery.dispatch(ready)
            await delivery.dispatch(ready)  # a redelivery sends nothing again
        finally:
            await channels.close()
        mails = {m.to: m for m in box.received}
    assert sorted(mails) == ["admin@acme.example", "consumer@example.com", "m6@solo.example"]
    digest = mails["admin@acme.example"]
    assert digest.content_type == "multipart/mixed" and digest.language == "fr"
    assert digest.notice == "EXP-7:2:restricted:2:org-acme"
    [internal] = receiver.received.values()
    assert internal["data"]["recipient"] == 7 and internal["data"]["email"] == "staff@provider.example"
    channels_used = {m.recipient: m.channel for m in outlet.messages if m.type == "NotificationDelivered"}
    assert channels_used == {1: "email", 2: "email", 6: "email", 7: "internal"}
