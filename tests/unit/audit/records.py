"""Contract messages as the audit would consume them, for the audit's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from devtools.messages import directive_enforced
from services.audit.record import Record
from shared.contracts.directives import DirectiveIssued, DirectiveScope, ForeignNational
from shared.contracts.impact import ImpactAssessed
from shared.contracts.notifications import NotificationDelivered

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SCOPE = DirectiveScope(models=["fable-5", "mythos-5"], selector=ForeignNational(home_country="US"))


def record(
    topic: str,
    offset: int,
    message: BaseModel | None,
    key: bytes | None = None,
    partition: int = 0,
    headers: tuple = (),
) -> Record:
    value = None if message is None else message.model_dump_json().encode()
    return Record(topic, partition, offset, key, value, headers, 1_800_000_000_000 + offset)


def directive_story(directive_id: str, notices: int = 3, t0: datetime = T0) -> list[Record]:
    """Issued, assessed, enforced and notified, a second apart, in that order."""
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    key = directive_id.encode()
    story = [
        record(
            "compliance.directives.v1",
            0,
            DirectiveIssued(
                producer="intake",
                directive_id=directive_id,
                correlation_id=directive_id,
                revision=1,
                title="Export control",
                scope=SCOPE,
                occurred_at=at(0),
            ),
            key,
        ),
        record(
            "compliance.impact.v1",
            0,
            ImpactAssessed(
                producer="impact",
                directive_id=directive_id,
                correlation_id=directive_id,
                revision=1,
                action="restrict",
                scope=SCOPE,
                affected_by_model={"fable-5": 61234},
                affected_users=61234,
                model_digests={"fable-5": "ab"},
                digest="9f86d081884c7d65",
                registry_offsets={0: 10},
                chunks=1,
                occurred_at=at(1),
            ),
            key,
        ),
        record(
            "compliance.enforcement.v1",
            0,
            directive_enforced(
                directive_id,
                1,
                "restrict",
                clusters=["us-east"],
                digest="9f86d081884c7d65",
                producer="enforcement",
                ack_latency_s={"us-east": 0.21, "eu-west": 0.25},
                occurred_at=at(2),
            ),
            key,
        ),
    ]
    for n in range(notices):
        story.append(
            record(
                "notifications.v1",
                n,
                NotificationDelivered(
                    producer="notifier",
                    notification_id=f"{directive_id}:1:restricted:{n}",
                    recipient=n,
                    directive_id=directive_id,
                    correlation_id=directive_id,
                    revision=1,
                    action="restricted",
                    occurred_at=at(3 + n),
                ),
                str(n).encode(),
                partition=n % 6,
            )
        )
    return story
