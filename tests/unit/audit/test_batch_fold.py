"""Folding a batch of records gives the same Evidence as `Evidence.add` one by one: for a directive's whole story,
in either order, in batches of any size, for a focus user, for every odd notice, and when notices are signed."""

from __future__ import annotations

import random

import orjson
import pytest

from services.audit.batch_fold import fold
from services.audit.evidence import Evidence
from services.audit.forgery import Signatures
from shared.runtime.signing import KeySet, Signer
from tests.unit.audit.evidence_story import at, story

NOTICES = "notifications.v1"
NOTIFIER = Signer.generate("notifier-1")


def notice(recipient: object, kind: str = "NotificationDelivered", /, **fields: object) -> bytes:
    document = {
        "type": kind,
        "event_id": f"n-{recipient}-{kind}",
        "occurred_at": at(100).isoformat(),
        "notification_id": f"EXP-9:1:restricted:{recipient}",
        "recipient": recipient,
        "directive_id": "EXP-9",
        "revision": 1,
        "action": "restricted",
        **fields,
    }
    return orjson.dumps({k: v for k, v in document.items() if v is not ...})


ODD_NOTICES = [
    None,  # a tombstone
    b"not json",
    b"[1, 2]",
    b'"a string"',
    notice(-1),
    notice(2**32),
    notice(True),
    notice("12"),
    notice(12.0),
    notice(13, revision=[1]),  # unhashable: the tally cannot be found
    notice(14, directive_id=...),
    notice(15, recipient=...),
    notice(16, type=...),
    notice(17, "NotificationFailed", reason="bounced"),
    notice(17, "NotificationFailed", reason="mailbox full"),  # the later reason wins, as one by one
    notice(18, "NotificationQueued"),
    notice(19, occurred_at="2026-03-03T13:05:00Z"),
    notice(20, occurred_at="2026-03-03T12:59:00"),  # no zone: UTC
    notice(21, occurred_at="2026-03-03T14:00:00+02:00"),
    notice(22, occurred_at="yesterday"),  # the Kafka timestamp stands in
    notice(23, occurred_at=...),
    notice(24, occurred_at=12),
    notice(25, "NotificationRequested", occurred_at="2026-03-03T12:00:00+00:00"),  # the earliest
    notice(25, "NotificationRequested", revision=2, action="restored"),
    notice(26, "NotificationRequested", directive_id="EXP-10"),
    notice(7, "NotificationRequested"),  # the focus user's, when there is one
    notice(7),
]


def records(reverse: bool = False) -> list[tuple]:
    story_records = [(topic, key, value) for topic, key, value in story("EXP-9")]
    story_records += [(NOTICES, b"k", value) for value in ODD_NOTICES]
    story_records += [(NOTICES, str(u).encode(), notice(u, "NotificationRequested")) for u in range(100, 400)]
    story_records += [(NOTICES, str(u).encode(), notice(u)) for u in range(100, 350)]
    positioned = [
        (topic, n % 3, n, key, value, 1_772_542_800_000 + n, [("h", b"v")])
        for n, (topic, key, value) in enumerate(story_records)
    ]
    return positioned[::-1] if reverse else positioned


def one_by_one(stream: list[tuple], **options: object) -> Evidence:
    evidence = Evidence(**options)
    for record in stream:
        evidence.add(*record)
    return evidence


def in_batches(stream: list[tuple], size: int, **options: object) -> Evidence:
    evidence = Evidence(**options)
    for start in range(0, len(stream), size):
        fold(evidence, stream[start : start + size])
    return evidence


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("size", [1, 7, 10_000])
@pytest.mark.parametrize("focus_user", [None, 7, 9])
def test_a_batch_folds_into_the_same_evidence_as_one_by_one(reverse: bool, size: int, focus_user: int | None) -> None:
    stream = records(reverse)
    expected = one_by_one(stream, focus_user=focus_user)
    assert in_batches(stream, size, focus_user=focus_user) == expected
    assert len(expected.notices[("EXP-9", 1, "restricted")].requested) > 300  # the notices were folded in
    assert expected.notices[("EXP-9", 1, "restricted")].failed == {17: "bounced" if reverse else "mailbox full"}


def test_any_interleaving_folds_into_the_same_evidence_as_one_by_one() -> None:
    for seed in range(5):
        shuffled = records()
        random.Random(seed).shuffle(shuffled)
        assert in_batches(shuffled, 50) == one_by_one(shuffled)


def test_signed_notices_are_checked_one_by_one_and_forgeries_set_aside() -> None:
    signatures = Signatures({NOTICES: KeySet([NOTIFIER.public()])})
    stream = records()
    signed = [
        (t, p, o, k, v, ts, [(n, h.encode()) for n, h in NOTIFIER.headers(t, k, v).items()] if u % 2 else hs)
        for u, (t, p, o, k, v, ts, hs) in enumerate(stream)
        if t == NOTICES and v is not None
    ]
    expected = one_by_one(signed, signatures=signatures)
    assert in_batches(signed, 64, signatures=signatures) == expected
    assert expected.forgeries and all(f.seen.topic == NOTICES for f in expected.forgeries)
