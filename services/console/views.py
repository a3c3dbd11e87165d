"""The board as the pages and event streams show it: plain dicts, the same for a first paint and a live update."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.console.board import Board, ClusterRecord, DirectiveRecord

STATES = ("pending", "applied", "overdue", "drifted", "failed")


def directive_summary(record: DirectiveRecord) -> dict[str, Any]:
    """One row of the directives list and the live page."""
    current = record.current
    rollout = record.rollout
    return {
        "directive_id": record.directive_id,
        "title": current.title,
        "authority": current.authority,
        "revision": current.revision,
        "status": record.status,
        "models": list(current.scope.models),
        "emergency": current.emergency,
        "effective_from": _iso(current.scope.effective_from),
        "expires_at": _iso(current.scope.expires_at),
        "rollout": None if rollout is None else rollout_view(rollout),
    }


def rollout_view(rollout: Any) -> dict[str, Any]:
    return {
        "revision": rollout.revision,
        "action": rollout.action,
        "expected_digest": rollout.expected_digest,
        "deadline": _iso(rollout.deadline),
        "enforced": rollout.enforced_at is not None,
        "time_to_enforce_s": rollout.time_to_enforce_s(),
        "counts": _counts(rollout.counts()),
        "clusters": {cid: _progress(p, rollout.expected_digest) for cid, p in sorted(rollout.clusters.items())},
    }


def _counts(found: dict[str, int]) -> dict[str, int]:
    return {state: found.get(state, 0) for state in STATES}


def _progress(progress: dict[str, Any], expected: str) -> dict[str, Any]:
    # A cluster serving only some of the models holds (and is expected to hold) a digest of its own.
    wanted = progress.get("expected_digest") or expected
    held = progress.get("digest")
    return {
        "expected_digest": wanted,
        "digest_matches": None if held is None else held == wanted,
        "state": progress.get("state", "pending"),
        "acked_at": progress.get("acked_at"),
        "digest": progress.get("digest"),
        "attempts": progress.get("attempts", 0),
        "reason": progress.get("reason"),
    }


def directive_detail(record: DirectiveRecord) -> dict[str, Any]:
    """The detail page: every revision with its scope, legal basis, window and who proposed and approved it."""
    revisions = []
    for revision in reversed(record.revisions):
        event = revision.event
        revisions.append(
            {
                "revision": event.revision,
                "title": event.title,
                "authority": event.authority,
                "issued_at": _iso(event.occurred_at),
                "scope": event.scope.model_dump(mode="json"),
                "models": list(event.scope.models),
                "unknown_attribute": event.scope.unknown_attribute,
                "deadline_s": event.scope.enforcement_deadline_s,
                "effective_from": _iso(event.scope.effective_from),
                "expires_at": _iso(event.scope.expires_at),
                "proposal_id": event.proposal_id,
                "proposed_by": event.proposed_by,
                "approved_by": list(event.approved_by),
                "emergency": event.emergency,
                "emergency_reason": event.emergency_reason,
            }
        )
    lifted = record.lifted
    return {
        **directive_summary(record),
        "revisions": revisions,
        "lifted": None
        if lifted is None
        else {
            "at": _iso(lifted.occurred_at),
            "reason": lifted.reason,
            "proposed_by": lifted.proposed_by,
            "approved_by": list(lifted.approved_by),
            "emergency": lifted.emergency,
        },
    }


def cluster_view(cluster: ClusterRecord, now: datetime) -> dict[str, Any]:
    staleness = cluster.staleness_s(now)
    return {
        "cluster_id": cluster.cluster_id,
        "region": cluster.region,
        "models": list(cluster.models),
        "ready": cluster.ready,
        "held": dict(cluster.held),  # copies: a page is sent while the feed goes on changing the board
        "last_heartbeat": _iso(cluster.last_heartbeat),
        "staleness_s": None if staleness is None else round(staleness, 1),
        "acks": list(cluster.acks),
    }


def checkpoint_status(board: Board) -> dict[str, Any]:
    """The audit's checkpoints as published: whether each is signed, and whether the ledger only ever grew (a
    checkpoint with fewer entries than an earlier one, or the same size with another head, is flagged)."""
    rows, problems = [], []
    previous = None
    for checkpoint in board.checkpoints:
        head = checkpoint.tree_head
        if (
            previous is not None
            and checkpoint.entries == previous.entries
            and checkpoint.head_hash != previous.head_hash
        ):
            problems.append(f"two heads for {checkpoint.entries} entries")
        rows.append(
            {
                "at": _iso(checkpoint.occurred_at),
                "entries": checkpoint.entries,
                "head_hash": checkpoint.head_hash,
                "signed": head is not None,
                "key_id": head.key_id if head else None,
                "root": head.root if head else None,
            }
        )
        previous = checkpoint
    unsigned = sum(not row["signed"] for row in rows)
    if unsigned:
        problems.append(f"{unsigned} checkpoint(s) without a signed tree head")
    return {"rows": list(reversed(rows)), "problems": problems, "consistent": not problems}


def render_key(board: Board, key: str, now: datetime) -> dict[str, Any] | None:
    """The event data for a changed key of the board (see Board.apply)."""
    kind, _, ident = key.partition(":")
    if kind == "directive":
        record = board.directive(ident)
        return None if record is None else directive_summary(record)
    if kind == "audit":
        return {"checkpoints": len(board.checkpoints)}
    if kind == "cluster" and ident in board.clusters:
        return cluster_view(board.clusters[ident], now)
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
