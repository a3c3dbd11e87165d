"""Affected-set deltas on the real broker: forwarded to every cluster, acked, logged, and kept across a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pyroaring import BitMap

from devtools.waiting import eventually
from shared.contracts.bitmaps import encode_bitmap, scope_digest, set_digest
from shared.contracts.catalogue import COMMANDS, ENFORCEMENT, IMPACT
from shared.contracts.impact import AffectedSetDelta
from tests.integration.enforcement.conftest import FakeAgent, TopicReader, impact, publish, running


class HeaderReader(TopicReader):
    """A topic reader that also keeps each record's headers."""

    def on_record(self, record: Any) -> Any:
        return super().on_record(record), dict(record.headers)

    def headers_of(self, **fields: Any) -> list[dict[str, bytes]]:
        return [h for m, h in self.messages if all(getattr(m, k, None) == v for k, v in fields.items())]


def changes(directive: str, sets: dict[str, BitMap], first_seq: int, count: int) -> list[AffectedSetDelta]:
    """Deltas adding and removing users on alternating models; `sets` is updated to the result."""
    models, out = sorted(sets), []
    for seq in range(first_seq, first_seq + count):
        model = models[seq % 2]
        added, removed = BitMap([1000 + seq, 2000 + seq]), BitMap([sets[model].min()])
        sets[model] = (sets[model] | added) - removed
        out.append(
            AffectedSetDelta(
                producer="impact",
                correlation_id=directive,
                directive_id=directive,
                revision=1,
                seq=seq,
                model=model,
                added=encode_bitmap(added),
                removed=encode_bitmap(removed),
                model_digest=set_digest(sets[model]),
            )
        )
    return out


def all_acked(status: TopicReader, directive: str, digest: str) -> list[Any]:
    return [
        p
        for p, _ in status.messages
        if p.type == "EnforcementProgressed"
        and p.directive_id == directive
        and p.expected_digest == digest
        and {c.state for c in p.clusters.values()} == {"applied"}
    ]


async def test_deltas_reach_every_cluster_are_acked_and_the_sets_survive_a_restart(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, fable, mythos = f"D-{unique}", f"fable-{unique}", f"mythos-{unique}"
    sets = {fable: BitMap(range(100)), mythos: BitMap(range(50, 70))}
    assessed, *chunks = impact(directive, dict(sets))
    key = (directive, 1, "restrict")
    async with (
        HeaderReader(bootstrap, ENFORCEMENT) as status,
        HeaderReader(bootstrap, COMMANDS) as sent,
        FakeAgent(bootstrap, f"a-{unique}", [fable]) as a,
        FakeAgent(bootstrap, f"b-{unique}", [fable, mythos]) as b,
    ):
        async with running(bootstrap, tmp_path) as service:
            await eventually(lambda: {a.cluster, b.cluster} <= set(service.core.clusters), what="heartbeats")
            await publish(bootstrap, IMPACT, assessed, *chunks)
            await eventually(
                lambda: [
                    m for m, _ in status.messages if m.type == "DirectiveEnforced" and m.directive_id == directive
                ],
                what="DirectiveEnforced",
            )

            await publish(bootstrap, IMPACT, *changes(directive, sets, 1, 6))
            digest = scope_digest({m: set_digest(s) for m, s in sets.items()})
            await eventually(lambda: all_acked(status, directive, digest), what="every cluster acked the deltas")
            assert a.digest_of(directive) == scope_digest({fable: set_digest(sets[fable])})
            assert b.digest_of(directive) == digest
            forwarded = sent.headers_of(type="DeltaCommand", directive_id=directive)
            assert len(forwarded) == 6 * 2  # every delta to every cluster holding the directive
            assert {h["content-type"] for h in forwarded} == {b"application/json"}
            assert service.core.sets[key] == sets

        with sqlite3.connect(tmp_path / "enforcement" / "enforcement.sqlite3") as db:
            logged = db.execute("SELECT count(*) FROM set_deltas WHERE key LIKE ?", (f'%"{directive}"%',))
            assert logged.fetchone()[0] == 6  # appended, not rewritten
        db.close()

        async with running(bootstrap, tmp_path) as restarted:  # sets rebuilt from base + delta log
            assert restarted.core.sets[key] == sets
            assert restarted.core.rollouts[key].delta_seq == {fable: 6, mythos: 5}
            await publish(bootstrap, IMPACT, *changes(directive, sets, 7, 2))
            digest = scope_digest({m: set_digest(s) for m, s in sets.items()})
            await eventually(lambda: all_acked(status, directive, digest), what="acks after the restart")
            assert restarted.core.sets[key] == sets
