"""On real Kafka and a real SMTP server: an organisation's members are summed up in one digest to each of its
administrators (member list attached), told once across a replay; consumers are told one by one."""

from __future__ import annotations

from pathlib import Path

from devtools.mailbox import Mailbox
from devtools.waiting import eventually
from tests.integration.notifier.conftest import (
    assessment,
    confirmation,
    mailing,
    produce,
    replaying,
    started,
    user,
    user_base,
)


def _record(user_id: int, email: str, kind: str, org: str | None = None, admin: bool = False, locale: str = "en"):
    entitlements = [] if admin else ["fable-5", "mythos-5"]
    return user(user_id, email, entitlements, locale, account_type=kind, organisation=org, org_admin=admin)


async def test_an_organisation_administrator_gets_one_digest_for_its_members(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, b, org = f"ORG-{unique}", user_base(unique), f"acme-{unique}"
    await produce(
        bootstrap,
        [
            _record(b, "consumer@example.com", "consumer"),
            _record(b + 1, "admin@acme.example", "enterprise_member", org, admin=True, locale="fr"),
            _record(b + 2, "m2@acme.example", "enterprise_member", org),
            _record(b + 3, "m3@acme.example", "enterprise_member", org),
        ],
    )
    with Mailbox() as box:
        settings = await mailing(bootstrap, tmp_path, unique, box, replay=True)
        notifier = await started(settings)
        try:
            sets = {"fable-5": [b, b + 1, b + 2, b + 3], "mythos-5": [b + 3]}
            await produce(bootstrap, assessment(directive, 1, "restrict", sets))
            await produce(bootstrap, [confirmation(directive, 1, "restrict")])
            await eventually(lambda: len(box.unique()) >= 2, what="notices")
        finally:
            await notifier.stop()
        again = await replaying(settings)
        try:
            await eventually(lambda: again.handlers.pairing.is_done((directive, 1, "restrict")), what="replayed")
        finally:
            await again.stop()
        mails = {m.to: m for m in box.received if m.notice.startswith(f"{directive}:")}
        copies = len([m for m in box.received if m.notice.startswith(f"{directive}:")])
    assert sorted(mails) == ["admin@acme.example", "consumer@example.com"] and copies == 2
    digest = mails["admin@acme.example"]
    assert digest.notice == f"{directive}:1:restricted:{b + 1}:org-{org}"
    assert digest.content_type == "multipart/mixed" and digest.language == "fr"  # the member list is attached
    assert digest.subject == "2 membres de votre organisation ont perdu l'accès à fable-5, mythos-5"
