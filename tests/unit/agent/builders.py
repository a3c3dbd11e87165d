"""Small builders of agent commands for the unit tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pyroaring import BitMap

from services.agent.access import AccessChecker
from services.agent.app import Agent, build
from services.agent.command_effects import on_restrict
from services.agent.restrictions import Restrictions
from services.agent.settings import AgentSettings
from shared.contracts.bitmaps import encode_bitmap, scope_digest, set_digest
from shared.contracts.envelope import utc_now
from shared.contracts.serving import ClusterSynced, DeltaCommand, LiftCommand, RestrictCommand

CLUSTER = "c-unit"


def restrict(
    directive: str,
    revision: int,
    model: str,
    users: list[int] | str,
    chunk: int = 0,
    chunks: int = 1,
    effective_from: datetime | None = None,
    expires_at: datetime | None = None,
    expected: str | None = None,
) -> RestrictCommand:
    """One chunk; unless given, the expected digest is that of this chunk alone (right for one-chunk revisions)."""
    encoded = users if isinstance(users, str) else encode_bitmap(BitMap(users))
    if expected is None:
        expected = "x" if isinstance(users, str) else scope_digest({model: set_digest(BitMap(users))})
    return RestrictCommand(
        producer="enforcement",
        cluster_id=CLUSTER,
        directive_id=directive,
        revision=revision,
        model=model,
        chunk=chunk,
        chunks=chunks,
        users=encoded,
        expected_digest=expected,
        effective_from=effective_from,
        expires_at=expires_at,
    )


def lift(directive: str, revision: int) -> LiftCommand:
    return LiftCommand(producer="enforcement", cluster_id=CLUSTER, directive_id=directive, revision=revision)


def synced(cluster: str = CLUSTER, beat: str = "beat-1") -> ClusterSynced:
    return ClusterSynced(
        event_id=f"synced:{cluster}:{beat}", producer="enforcement", cluster_id=cluster, heartbeat_event_id=beat
    )


def delta(
    directive: str, revision: int, seq: int, model: str, added: list[int] | str = (), removed: list[int] = ()
) -> DeltaCommand:
    encoded = added if isinstance(added, str) else encode_bitmap(BitMap(added))
    return DeltaCommand(
        producer="enforcement",
        cluster_id=CLUSTER,
        directive_id=directive,
        revision=revision,
        seq=seq,
        model=model,
        added=encoded,
        removed=encode_bitmap(BitMap(removed)),
    )


class RecordingPublisher:
    """Stands in for the acks publisher; notes what the snapshot held when each ack went out."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.sent: list[tuple[Any, set[str]]] = []

    async def publish(self, message: Any, **_: Any) -> None:
        durable, _ = self.snapshot.load()
        self.sent.append((message, set(durable.held)))


def recording_agent(tmp_path: Path, clock: Callable[[], datetime] = utc_now, replica_id: str = "") -> Agent:
    """An agent with its store open and its acks recorded, for driving `handle` without Kafka."""
    settings = AgentSettings(cluster_id=CLUSTER, state_dir=tmp_path, replica_id=replica_id)
    agent = build(settings, clock)  # its store under tmp_path/agent
    agent.reports.publisher = RecordingPublisher(agent.holding.store)
    return agent


def held_checker(ready: bool) -> tuple[AccessChecker, Restrictions]:
    """A checker over D1 = {1042 on fable-5}, ready or not, with the state it was built from."""
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1042]))
    checker = AccessChecker()
    checker.replace(state.held)
    if ready:
        checker.mark_ready()
    return checker, state


async def closed(agent: Agent) -> None:
    """Stop an agent built by a test: its background tasks cancelled and awaited, its store closed."""
    for task in agent.tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # a task's own failure still fails the test
            await task
    agent.holding.store.close()
