"""A directive told on every topic, as records the audit's evidence folds in (unit tests and the Kafka test)."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

from pyroaring import BitMap

from services.audit.record import Record
from shared.contracts.bitmaps import encode_bitmap, sets_digest
from shared.contracts.directives import CausedBy, DirectiveScope, ForeignNational
from shared.contracts.enforcement import ClusterProgress, EnforcementProgressed
from shared.contracts.impact import AffectedSetChunk, ImpactAssessed
from shared.contracts.notifications import NotificationDelivered, NotificationRequested
from shared.contracts.serving import AgentHeartbeat, CommandApplied, RestrictCommand
from shared.contracts.users import UserUpserted

T0 = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
SCOPE = DirectiveScope(models=["fable-5"], selector=ForeignNational(home_country="US"), enforcement_deadline_s=60)
AFFECTED = BitMap([7, 8, 9])
DIGEST = sets_digest({"fable-5": AFFECTED})
USERS = {
    7: (["FR"], "FR", "consumer"),
    8: (["DE"], "US", "employee"),
    9: (None, "US", "consumer"),
    10: (["US"], "US", "consumer"),
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


AS_ISSUED = "as issued"


def story(
    directive_id: str, emergency: bool = True, command_cause: CausedBy | None | str = AS_ISSUED
) -> list[tuple[str, bytes, bytes | None]]:
    """(topic, key, value): users, the directive (issued under the emergency role), impact, commands naming the
    directive's cause (or `command_cause`), acks (eu-west late, ap-south with a wrong digest), enforcement,
    notices (user 9's never delivered)."""
    key = directive_id.encode()
    env = {"correlation_id": directive_id}
    records: list[tuple[str, bytes, bytes | None]] = []
    for user, (nats, residence, kind) in USERS.items():
        upsert = UserUpserted(
            producer="loader",
            user_id=user,
            email=f"u{user}@example.com",
            nationalities=nats,
            residence=residence,
            account_type=kind,
            entitlements=["fable-5"],
            occurred_at=at(-60),
        )
        records.append(("identity.users.v1", str(user).encode(), upsert.model_dump_json().encode()))
    issued = {
        "type": "DirectiveIssued",
        "event_id": f"{directive_id}-i",
        "schema_version": 1,
        "producer": "intake",
        "occurred_at": at(0).isoformat(),
        "directive_id": directive_id,
        "revision": 1,
        "title": "Export control",
        "authority": "Order 2026/17",
        "scope": SCOPE.model_dump(mode="json"),
        "proposed_by": "alice",
        "approved_by": None if emergency else "bob",
        "emergency": emergency,
        "emergency_reason": "court order" if emergency else "",
        **env,
    }
    if command_cause == AS_ISSUED:
        command_cause = CausedBy(
            proposed_by="alice",
            approved_by=[] if emergency else ["bob"],
            emergency=emergency,
            emergency_reason="court order" if emergency else "",
        )
    records.append(("compliance.directives.v1", key, _json(issued)))
    assessed = ImpactAssessed(
        producer="impact",
        directive_id=directive_id,
        revision=1,
        action="restrict",
        scope=SCOPE,
        affected_by_model={"fable-5": 3},
        affected_users=3,
        by_country={"FR": 1, "US": 2},
        by_account_type={"consumer": 2, "employee": 1},
        model_digests={"fable-5": DIGEST},
        digest=DIGEST,
        registry_offsets={0: 0},
        chunks=1,
        occurred_at=at(1),
        **env,
    )
    chunk = AffectedSetChunk(
        producer="impact",
        directive_id=directive_id,
        revision=1,
        action="restrict",
        model="fable-5",
        chunk=0,
        chunks=1,
        users=encode_bitmap(AFFECTED),
        occurred_at=at(1),
        **env,
    )
    records += [
        ("compliance.impact.v1", key, assessed.model_dump_json().encode()),
        ("compliance.impact.v1", key, chunk.model_dump_json().encode()),
    ]
    acked = {"us-east": (5, DIGEST), "eu-west": (90, DIGEST), "ap-south": (6, "f" * 64)}
    for cluster, (seconds, digest) in acked.items():
        beat = AgentHeartbeat(producer="agent", cluster_id=cluster, models=["fable-5"], ready=True, occurred_at=at(-30))
        command = RestrictCommand(
            producer="enforcement",
            cluster_id=cluster,
            directive_id=directive_id,
            revision=1,
            model="fable-5",
            chunk=0,
            chunks=1,
            users=encode_bitmap(AFFECTED),
            expected_digest=DIGEST,
            caused_by=command_cause,
            occurred_at=at(2),
            **env,
        )
        ack = CommandApplied(
            producer="agent",
            cluster_id=cluster,
            directive_id=directive_id,
            revision=1,
            action="restrict",
            digest=digest,
            occurred_at=at(seconds),
            **env,
        )
        records += [
            ("serving.acks.v1", cluster.encode(), beat.model_dump_json().encode()),
            ("serving.commands.v1", cluster.encode(), command.model_dump_json().encode()),
            ("serving.acks.v1", cluster.encode(), ack.model_dump_json().encode()),
        ]
    states = {
        c: ClusterProgress(
            state="applied" if c != "ap-south" else "failed",
            sent_at=at(2),
            acked_at=at(s),
            digest=d,
            expected_digest=DIGEST,
        )
        for c, (s, d) in acked.items()
    }
    progress = EnforcementProgressed(
        producer="enforcement",
        directive_id=directive_id,
        revision=1,
        action="restrict",
        expected_digest=DIGEST,
        clusters=states,
        deadline=at(60),
        occurred_at=at(91),
        **env,
    )
    records.append(("compliance.enforcement.v1", key, progress.model_dump_json().encode()))
    for user in AFFECTED:
        notice = {
            "notification_id": f"{directive_id}:1:restricted:{user}",
            "recipient": user,
            "directive_id": directive_id,
            "revision": 1,
            "action": "restricted",
            **env,
        }
        requested = NotificationRequested(
            producer="notifier", email="x@example.com", models=["fable-5"], occurred_at=at(95), **notice
        )
        records.append(("notifications.v1", str(user).encode(), requested.model_dump_json().encode()))
        if user != 9:
            delivered = NotificationDelivered(producer="notifier", occurred_at=at(96), **notice)
            records.append(("notifications.v1", str(user).encode(), delivered.model_dump_json().encode()))
    return records  # no DirectiveEnforced: ap-south acknowledged the wrong digest


def _json(document: dict) -> bytes:
    return json.dumps(document).encode()


@functools.cache
def ledger_records(directives: tuple[str, ...] = ("EXP-9", "EXP-10")) -> list[Record]:
    """Two directives' stories, their records spread over partitions as a consumer would see them (made once:
    the story's event ids are random)."""
    out, offsets = [], {}
    for directive_id in directives:
        for topic, key, value in story(directive_id):
            partition = hash(key) % 3
            offset = offsets.get((topic, partition), 0)
            offsets[(topic, partition)] = offset + 1
            out.append(Record(topic, partition, offset, key, value, (), int(T0.timestamp() * 1000)))
    return out
