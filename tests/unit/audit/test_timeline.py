"""A directive's timeline: its events in time order, one line each, notices aggregated."""

from __future__ import annotations

import json

from services.audit.chain import GENESIS, link
from services.audit.checkpoints import CheckpointPolicy
from services.audit.record import Record
from services.audit.timeline import events_of, summary, timeline
from shared.contracts.users import UserUpserted
from tests.unit.audit.records import directive_story, record


def test_timeline_summarises_each_event_type_in_one_line() -> None:
    lines = timeline(link(directive_story("EXP-7", notices=4), GENESIS, 1), "EXP-7")
    assert [line.summary for line in lines] == [
        "DirectiveIssued rev 1: fable-5, mythos-5",
        "ImpactAssessed restrict: 61,234 users, digest 9f86d0…",
        "DirectiveEnforced: us-east 0.21s, eu-west 0.25s",
        "NotificationDelivered x 4",
    ]
    assert [line.topic for line in lines][:2] == ["compliance.directives.v1", "compliance.impact.v1"]


def test_timeline_orders_by_event_time_whatever_the_ledger_order() -> None:
    story = directive_story("EXP-8", notices=2)
    lines = timeline(link(list(reversed(story)), GENESIS, 1), "EXP-8")
    assert [line.event for line in lines] == [
        "DirectiveIssued",
        "ImpactAssessed",
        "DirectiveEnforced",
        "NotificationDelivered",
    ]


def test_redelivered_notices_are_counted_once() -> None:
    story = directive_story("EXP-9", notices=3)
    again = Record(story[-1].topic, 5, 99, story[-1].key, story[-1].value)
    lines = timeline(link(story + [again], GENESIS, 1), "EXP-9")
    assert lines[-1].summary == "NotificationDelivered x 3"


def test_only_the_directives_own_events_are_included() -> None:
    mine, other = directive_story("EXP-10"), directive_story("EXP-11")
    user = record(
        "identity.users.v1",
        0,
        UserUpserted(
            producer="loader", user_id=5, email="a@b.c", nationalities=None, residence=None, account_type="consumer"
        ),
        b"5",
    )
    entries = link(mine + other + [user, Record("identity.users.v1", 0, 1, b"5", None)], GENESIS, 1)
    assert {e.envelope.correlation_id for e in events_of(entries, "EXP-10")} == {"EXP-10"}
    assert len(events_of(entries, "EXP-10")) == len(mine)


def test_entries_keyed_by_the_directive_are_included_even_when_they_do_not_parse() -> None:
    entries = link([Record("compliance.directives.v1", 0, 0, b"EXP-12", b"{broken")], GENESIS, 1)
    [line] = timeline(entries, "EXP-12")
    assert (line.event, line.summary) == ("unparsable", "unparsable (key EXP-12, 7 bytes)")


def test_a_value_that_does_not_fit_its_type_still_gets_a_line() -> None:
    value = b'{"type": "DirectiveIssued", "correlation_id": "EXP-13"}'
    [line] = timeline(link([Record("compliance.directives.v1", 0, 0, None, value)], GENESIS, 1), "EXP-13")
    assert line.summary == "DirectiveIssued (does not match its schema)"


def test_a_restrict_command_is_summarised_by_its_set_references_or_its_inline_chunk() -> None:
    common = {"type": "RestrictCommand", "correlation_id": "EXP-14", "cluster_id": "us-east", "directive_id": "EXP-14"}
    by_reference = {**common, "sets": [{"model": "fable-5", "version": 0}, {"model": "mythos-5", "version": 3}]}
    inline = {**common, "model": "fable-5", "chunk": 1, "chunks": 4}
    values = [json.dumps(doc).encode() for doc in (by_reference, inline)]
    entries = link([Record("serving.commands.v1", 0, i, b"us-east", v) for i, v in enumerate(values)], GENESIS, 1)
    assert [summary(entry) for entry in entries] == [
        "RestrictCommand us-east sets fable-5 v0, mythos-5 v3",
        "RestrictCommand us-east fable-5 chunk 2/4",
    ]


def test_checkpoint_is_due_after_enough_entries_or_after_the_interval_with_activity() -> None:
    policy = CheckpointPolicy(every=100, interval_s=10)
    assert policy.due(entries=150, last_entries=50, now=1, last_at=0)
    assert not policy.due(entries=149, last_entries=50, now=9, last_at=0)
    assert policy.due(entries=51, last_entries=50, now=10, last_at=0)
    assert not policy.due(entries=50, last_entries=50, now=100, last_at=0)
