"""Folding many records into the Evidence at once, with the same result as `Evidence.add` one by one. Notices,
the bulk of a large directive's records, are gathered per revision and action and added to their bitmaps in one
call; everything else (and any notice that is not plain) goes through `Evidence.add`. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import orjson

from services.audit.evidence import ActKey, Evidence, parse_time
from shared.contracts.catalogue import NOTIFICATIONS

GATHERED = frozenset({"NotificationRequested", "NotificationDelivered"})  # failures keep their order: one by one
LARGEST_ID = 2**32 - 1  # what a roaring bitmap holds


class _Gathered:
    """One revision and action's notices of a batch, before they join its tally."""

    __slots__ = ("requested", "delivered", "first_at", "last_at")

    def __init__(self, at: datetime) -> None:
        self.requested: list[int] = []
        self.delivered: list[int] = []
        self.first_at = at
        self.last_at = at


def fold(evidence: Evidence, records: Iterable[Sequence]) -> None:
    """Fold records given as (topic, partition, offset, key, value, timestamp ms[, headers]) into `evidence`, in
    the order `Evidence.add` expects them (tests/unit/audit/test_batch_fold.py: the same Evidence)."""
    add = evidence.add
    if NOTIFICATIONS.name in evidence.signatures.keys:  # every notice's signature is checked: one by one
        for record in records:
            add(*record)
        return
    gathered: dict[ActKey, _Gathered] = {}
    focus_user, topic, loads, gather = evidence.focus_user, NOTIFICATIONS.name, orjson.loads, GATHERED
    for record in records:
        if record[0] != topic:
            add(*record)
            continue
        try:
            doc = loads(record[4])
            kind, recipient = doc["type"], doc["recipient"]
            key = (doc["directive_id"], doc["revision"], doc["action"])
            batch = gathered.get(key)
        except (orjson.JSONDecodeError, TypeError, KeyError):  # garbage, a tombstone, a field missing or unhashable
            add(*record)
            continue
        if (
            kind not in gather
            or type(recipient) is not int
            or not 0 <= recipient <= LARGEST_ID
            or recipient == focus_user
        ):
            add(*record)  # a failure (kept in order), the focus user's notice, or a recipient that does not fit
            continue
        at = _time(doc.get("occurred_at"), record[5])
        if batch is None:
            batch = gathered[key] = _Gathered(at)
        elif at < batch.first_at:
            batch.first_at = at
        elif at > batch.last_at:
            batch.last_at = at
        (batch.requested if kind == "NotificationRequested" else batch.delivered).append(recipient)
    _merge(evidence, gathered)


def _time(text: object, ts: int) -> datetime:
    """`Evidence`'s reading of an event's time, quicker for the common spelling (ISO 8601 with an offset)."""
    if type(text) is str:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None and "Z" not in text:
                return moment
    return parse_time(text) or datetime.fromtimestamp(ts / 1000, UTC)


def _merge(evidence: Evidence, gathered: dict[ActKey, _Gathered]) -> None:
    for key, batch in gathered.items():
        tally = evidence.notices[key]
        tally.requested.update(batch.requested)
        tally.delivered.update(batch.delivered)
        tally.first_at = batch.first_at if tally.first_at is None else min(tally.first_at, batch.first_at)
        tally.last_at = batch.last_at if tally.last_at is None else max(tally.last_at, batch.last_at)
        evidence.events += len(batch.requested) + len(batch.delivered)
        evidence.first_at = batch.first_at if evidence.first_at is None else min(evidence.first_at, batch.first_at)
        evidence.last_at = batch.last_at if evidence.last_at is None else max(evidence.last_at, batch.last_at)
