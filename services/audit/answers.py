"""One user's question answered from the ledger's lookup index: only the user's and the directives' entries are
read, so the cost does not grow with other users' notices. The same Evidence and explain as the Kafka path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.audit.batch_fold import fold
from services.audit.evidence import Evidence
from services.audit.explain import explain
from services.audit.forgery import NO_CHECK, Signatures
from services.audit.ledger import Ledger
from shared.contracts.catalogue import ACKS, COMMANDS, DIRECTIVES, ENFORCEMENT, IMPACT, NOTIFICATIONS, USERS

# What the Kafka reader folds for explain (the dead-letter topics and checkpoints are not evidence of access).
EVIDENCE_TOPICS = frozenset(t.name for t in (DIRECTIVES, IMPACT, COMMANDS, ACKS, ENFORCEMENT, NOTIFICATIONS, USERS))


def user_evidence(ledger: Ledger, user: int, signatures: Signatures = NO_CHECK) -> Evidence:
    """The evidence one user's question needs, from the ledger (its lookup index where it has one)."""
    if ledger.indexed():
        entries, first_us = ledger.about_user(user)
    else:
        entries, first_us = list(ledger.entries()), None
    evidence = Evidence(focus_user=user, signatures=signatures)
    wanted = (entry.record for entry in entries if entry.record.topic in EVIDENCE_TOPICS)
    fold(
        evidence, [(r.topic, r.partition, r.offset, r.key, r.value, r.kafka_timestamp or 0, r.headers) for r in wanted]
    )
    if first_us is not None:
        first = datetime.fromtimestamp(first_us / 1_000_000, UTC)
        evidence.first_at = first if evidence.first_at is None else min(first, evidence.first_at)
    return evidence


def directive_evidence(ledger: Ledger, directive_id: str, signatures: Signatures = NO_CHECK) -> Evidence:
    """The evidence of one directive's report, from the ledger: the entries its id keys or correlates."""
    evidence = Evidence(signatures=signatures)
    for entry in ledger.entries_of(directive_id):
        r = entry.record
        if r.topic in EVIDENCE_TOPICS:
            evidence.add(r.topic, r.partition, r.offset, r.key, r.value, r.kafka_timestamp or 0, r.headers)
    return evidence


def explain_from_ledger(
    ledger: Ledger, user: int, model: str, at: datetime, signatures: Signatures = NO_CHECK
) -> dict[str, Any]:
    """`explain` over the ledger; NothingFound as explain raises it."""
    return explain(user_evidence(ledger, user, signatures), user, model, at)


def answer_json(answer: dict[str, Any]) -> str:
    """The JSON text of an answer, as `countermand audit explain --json` prints it and the HTTP API returns it."""
    return json.dumps(answer, indent=2, default=str)
