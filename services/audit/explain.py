"""Answers for one moment: was this user allowed this model on each cluster, on what evidence (`explain`); and
which directives were in force with what per-cluster state (`at`). Pure: queries over the Evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.audit.clauses import decision, explain_selector
from services.audit.evidence import Evidence, Seen, parse_time
from services.audit.report import NothingFound


class BeforeFirstEvent(NothingFound):
    """The moment asked about precedes every recorded event."""


def explain(evidence: Evidence, user: int, model: str, at: datetime) -> dict[str, Any]:
    """Allowed or denied per cluster at `at`, with the chain of evidence; NothingFound for a user never in the
    registry or a time before any event."""
    _check_time(evidence, at)
    record = _record_at(evidence, user, at)
    _check_model(evidence, model)
    covering = [c for c in (_covering(evidence, d, user, model, at, record) for d in sorted(evidence.issued)) if c]
    clusters = sorted(set(_serving(evidence, model)) | {c for d in covering for c in d["clusters"]})
    verdicts = {}
    for cluster in clusters:
        holding = [d for d in covering if d["covered"] and d["clusters"].get(cluster, {}).get("enforced")]
        owed = [d for d in covering if d["covered"] and not d["clusters"].get(cluster, {}).get("enforced")]
        state = (
            "denied" if holding else ("allowed, but should have been denied (not yet enforced)" if owed else "allowed")
        )
        verdicts[cluster] = {"decision": state, "by": [d["directive_id"] for d in holding or owed]}
    return {
        "user": user,
        "model": model,
        "at": at.isoformat(),
        "denied_everywhere": bool(verdicts) and all(v["decision"] == "denied" for v in verdicts.values()),
        "clusters": verdicts,
        "registry_record": record,
        "directives": covering,
        "forged_records_ignored": _forgeries(evidence, user),
    }


def _forgeries(evidence: Evidence, user: int) -> list[dict[str, Any]]:
    """Forged records about a directive or this user: listed so an auditor sees them, never used above."""
    return [
        {
            "topic": f.seen.topic,
            "partition": f.seen.partition,
            "offset": f.seen.offset,
            "type": f.seen.doc.get("type"),
            "at": f.seen.at.isoformat(),
            "reason": f.reason,
        }
        for f in sorted(evidence.forgeries, key=lambda f: (f.seen.topic, f.seen.partition, f.seen.offset))
        if f.directive_id is not None or f.seen.doc.get("recipient") == user or f.seen.doc.get("user_id") == user
    ]


def _check_time(evidence: Evidence, at: datetime) -> None:
    if evidence.first_at is None:
        raise NothingFound("no event recorded on the topics")
    if at < evidence.first_at:
        raise BeforeFirstEvent(
            f"at: {at.isoformat()} is before any recorded event (the first is {evidence.first_at.isoformat()})"
        )


def _check_model(evidence: Evidence, model: str) -> None:
    named = {m for seen in evidence.issued.values() for s in seen for m in s.doc["scope"]["models"]}
    if model not in named and not any(model in models for models in evidence.cluster_models.values()):
        raise NothingFound(f"model: {model!r} is served by no cluster and named by no directive")


def _record_at(evidence: Evidence, user: int, at: datetime) -> dict[str, Any] | None:
    if not evidence.user_records:
        raise NothingFound(f"user: {user} has no record on identity.users.v1")
    before = [s for s in evidence.user_records if s.at <= at]
    if not before:
        return None
    latest = max(before, key=lambda s: (s.at, s.offset))
    return {"partition": latest.partition, "offset": latest.offset, "at": latest.at.isoformat(), "record": latest.doc}


def _serving(evidence: Evidence, model: str) -> list[str]:
    return [c for c, models in evidence.cluster_models.items() if model in models]


def _covering(
    evidence: Evidence, directive_id: str, user: int, model: str, at: datetime, record: dict | None
) -> dict[str, Any] | None:
    seen = evidence.in_force(directive_id, at)
    if seen is None or model not in seen.doc["scope"]["models"]:
        return None
    revision, scope = seen.doc["revision"], seen.doc["scope"]
    covered = evidence.covers(directive_id, revision, model, user, at)
    clause = (
        explain_selector(scope["selector"], record["record"])
        if record and record["record"].get("user_id") is not None
        else None
    )
    assessed = evidence.assessed.get((directive_id, revision, "restrict"))
    return {
        "directive_id": directive_id,
        "revision": revision,
        "issued_at": seen.at.isoformat(),
        "title": seen.doc.get("title", ""),
        "proposed_by": seen.doc.get("proposed_by"),
        "approved_by": seen.doc.get("approved_by"),
        "emergency": bool(seen.doc.get("emergency")),
        "covered": covered,
        "selector": clause,
        "selector_decides": None
        if clause is None
        else decision(clause["truth"], scope.get("unknown_attribute", "restrict")),
        "assessment": None
        if assessed is None
        else {
            "at": assessed.at.isoformat(),
            "digest": assessed.doc["digest"],
            "registry_offsets": assessed.doc.get("registry_offsets"),
        },
        "clusters": _cluster_evidence(evidence, directive_id, revision, at),
        "notice": _notice(evidence, directive_id, revision, user),
    }


def _cluster_evidence(evidence: Evidence, directive_id: str, revision: int, at: datetime) -> dict[str, dict]:
    expected = _expected_digests(evidence, directive_id, revision)
    found: dict[str, dict] = {}
    for (d, r, cluster), sent in evidence.commands.items():
        if d == directive_id and r == revision:
            found.setdefault(cluster, {})["command_sent_at"] = min(sent).isoformat()
    for ack in evidence.acks.get((directive_id, revision), []):
        if ack.at > at or ack.doc.get("type") != "CommandApplied" or ack.doc.get("action") == "lift":
            continue
        cluster = ack.doc["cluster_id"]
        matches = expected.get(cluster) in (None, ack.doc["digest"])
        entry = found.setdefault(cluster, {})
        entry.update(
            acked_at=ack.at.isoformat(),
            digest=ack.doc["digest"],
            expected_digest=expected.get(cluster),
            digest_matches=matches,
        )
        entry["enforced"] = entry.get("enforced", False) or matches
    return dict(sorted(found.items()))  # the same order however the partitions were interleaved


def _expected_digests(evidence: Evidence, directive_id: str, revision: int) -> dict[str, str]:
    expected: dict[str, str] = {}
    for update in evidence.progress.get((directive_id, revision, "restrict"), []):
        for cluster, progress in update.doc["clusters"].items():
            digest = progress.get("expected_digest") or update.doc.get("expected_digest")
            if digest:
                expected[cluster] = digest
    return expected


def _notice(evidence: Evidence, directive_id: str, revision: int, user: int) -> dict[str, Any]:
    tally = evidence.notices.get((directive_id, revision, "restricted"))
    mine = [s for s in evidence.user_notices if s.doc["directive_id"] == directive_id and s.doc["revision"] == revision]
    return {
        "requested": bool(tally and user in tally.requested),
        "delivered": bool(tally and user in tally.delivered),
        "failed": None if not tally else tally.failed.get(user),
        "events": [{"type": s.doc["type"], "at": s.at.isoformat()} for s in mine],
    }


def at_moment(evidence: Evidence, at: datetime) -> dict[str, Any]:
    """Directives in force at `at`, each with its per-cluster state and affected counts."""
    _check_time(evidence, at)
    in_force = []
    for directive_id in sorted(evidence.issued):
        seen = evidence.in_force(directive_id, at)
        if seen is None:
            continue
        revision = seen.doc["revision"]
        counts = {m: len(evidence.affected_at(directive_id, revision, m, at)) for m in seen.doc["scope"]["models"]}
        in_force.append(
            {
                "directive_id": directive_id,
                "revision": revision,
                "issued_at": seen.at.isoformat(),
                "affected_by_model": counts,
                "clusters": _states_at(evidence.progress.get((directive_id, revision, "restrict"), []), at),
            }
        )
    return {"at": at.isoformat(), "directives_in_force": len(in_force), "directives": in_force}


def _states_at(updates: list[Seen], at: datetime) -> dict[str, str]:
    before = [u for u in updates if u.at <= at]
    if not before:
        return {}
    latest = max(before, key=lambda u: u.at)
    return {c: p["state"] for c, p in sorted(latest.doc["clusters"].items())}


def moment(text: str) -> datetime:
    """A time given on the command line (ISO 8601; UTC when it names no zone); ValueError otherwise."""
    parsed = parse_time(text)
    if parsed is None:
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    return parsed
