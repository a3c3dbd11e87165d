"""Explain from the ledger's lookup index gives the answer explain gives over every record; the index and the
Merkle frontier are kept in each append's transaction, so a reopened ledger needs no pass over its entries."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from services.audit.answers import answer_json, explain_from_ledger, user_evidence
from services.audit.evidence import Evidence
from services.audit.explain import explain
from services.audit.ledger import Ledger
from services.audit.merkle import Frontier, root
from services.audit.record import Record
from services.audit.report import NothingFound
from tests.unit.audit.evidence_story import at
from tests.unit.audit.evidence_story import ledger_records as records


def full_explain(recs: list[Record], user: int, model: str, when: datetime) -> dict:
    evidence = Evidence(focus_user=user)
    for r in recs:
        evidence.add(r.topic, r.partition, r.offset, r.key, r.value, r.kafka_timestamp, r.headers)
    return explain(evidence, user, model, when)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    store = Ledger(tmp_path / "ledger.sqlite")
    recs = records()
    for start in range(0, len(recs), 7):  # several batches
        store.append(recs[start : start + 7])
    yield store
    store.close()


@pytest.mark.parametrize(("user", "seconds"), [(7, 30), (8, 100), (9, 3), (10, 100), (7, -29)])
def test_the_indexed_answer_is_the_answer_over_every_record(ledger: Ledger, user: int, seconds: float) -> None:
    expected = full_explain(records(), user, "fable-5", at(seconds))
    assert explain_from_ledger(ledger, user, "fable-5", at(seconds)) == expected
    assert answer_json(expected) == answer_json(explain_from_ledger(ledger, user, "fable-5", at(seconds)))


def test_the_index_reads_only_the_users_and_the_directives_entries(ledger: Ledger) -> None:
    entries, first_us = ledger.about_user(7)
    topics_keys = {
        (e.record.topic, e.record.key) for e in entries if e.record.topic in ("identity.users.v1", "notifications.v1")
    }
    assert topics_keys == {("identity.users.v1", b"7"), ("notifications.v1", b"7")}
    assert first_us == int(at(-30).timestamp() * 1_000_000)  # the heartbeats are the first events
    beats = [e for e in entries if e.envelope.type == "AgentHeartbeat"]
    assert len(beats) == 3  # the latest of each cluster, not all six


def test_unknown_user_model_and_a_time_before_any_event_are_refused(ledger: Ledger) -> None:
    with pytest.raises(NothingFound, match="user: 4242"):
        explain_from_ledger(ledger, 4242, "fable-5", at(30))
    with pytest.raises(NothingFound, match="model: 'no-such-model'"):
        explain_from_ledger(ledger, 7, "no-such-model", at(30))
    with pytest.raises(NothingFound, match="before any recorded event"):
        explain_from_ledger(ledger, 7, "fable-5", at(-3600))


def test_a_reopened_ledger_takes_its_frontier_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = Ledger(path)
    store.append(records())
    size, top = store.tree_head()
    store.close()
    reopened = Ledger(path)
    assert reopened.tree_head() == (size, top) == (len(records()), root(reopened.leaves()))
    reopened.close()
    with sqlite3.connect(path) as db:  # leaves that the stored frontier cannot come from: it is used as is
        db.execute("UPDATE leaves SET leaf = zeroblob(32)")
    assert Ledger(path).tree_head() == (size, top)


def test_a_damaged_frontier_is_rebuilt_from_the_leaves(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = Ledger(path)
    store.append(records())
    expected = store.tree_head()
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE frontier SET nodes = x'00'")
    assert Ledger(path).tree_head() == expected


def test_a_ledger_from_before_the_index_is_indexed_once_when_the_audit_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = Ledger(path)
    store.append(records())
    store.close()
    with sqlite3.connect(path) as db:
        for table in ("lookup", "latest", "facts", "frontier"):
            db.execute(f"DROP TABLE {table}")
    old = Ledger(path, read_only=True)
    assert not old.indexed()
    expected = full_explain(records(), 7, "fable-5", at(30))
    assert explain(user_evidence(old, 7), 7, "fable-5", at(30)) == expected  # read whole, same answer
    old.close()
    Ledger(path).close()
    reader = Ledger(path, read_only=True)
    assert reader.indexed() and explain_from_ledger(reader, 7, "fable-5", at(30)) == expected


def test_frontier_state_round_trips_and_refuses_a_mismatch() -> None:
    frontier = Frontier()
    for n in range(13):
        frontier.append(bytes([n]) * 32)
    again = Frontier.restore(frontier.size, frontier.state())
    assert again.root() == frontier.root()
    with pytest.raises(ValueError, match="does not fit"):
        Frontier.restore(15, frontier.state())
