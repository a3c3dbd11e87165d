"""Commands of this cluster's partition: signature checked, applied durably, then acknowledged; sync markers
recorded; staged revisions whose chunks did not all come in time reported."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.agent.command_effects import Applied, Failed, on_command, on_restrict, refuse_sets
from services.agent.holding import Holding
from services.agent.readiness import Readiness
from services.agent.reports import Reports
from services.agent.set_reader import SetCopyRefused, SetReader
from shared.contracts.serving import REFUSED, ClusterCommand, ClusterSynced, DeltaCommand, LiftCommand, RestrictCommand
from shared.runtime.dispatch import Dispatch
from shared.runtime.logging import bind_message_ids
from shared.runtime.record_signing import verify_record
from shared.runtime.signing import KeySet, SignatureRefused


@dataclass
class CommandHandling:
    """Applies one cluster's commands to what it holds and reports each outcome."""

    cluster_id: str
    holding: Holding
    reports: Reports
    readiness: Readiness
    keys: KeySet | None  # whose commands are applied (enforcement's); None: signatures not checked
    clock: Callable[[], datetime]
    log: Any
    sets: SetReader | None = None  # reads the set copies restrict commands reference
    heard_at: float = 0.0  # monotonic time of the last command handled (housekeeping waits for a lull)

    async def handle(
        self, command: RestrictCommand | DeltaCommand | LiftCommand | ClusterSynced, partition: int, offset: int
    ) -> None:
        """Apply one command (seen by checks at once, durable before the offset commits), then acknowledge it."""
        self.heard_at = time.monotonic()
        if command.cluster_id != self.cluster_id:
            # The topic carries every cluster's commands: on the wire another cluster's are not an error.
            self.log.debug("command for another cluster ignored", cluster=command.cluster_id)
            return
        await RULES.handler(command)(self, command, partition, offset)

    async def refuse_unsigned(self, command: ClusterCommand, record: Any) -> bool:
        """Whether a command of this cluster fails its signature check (forged, altered, an unknown or retired
        key); the refusal is reported on the acks topic and nothing changes."""
        if self.keys is None or command.cluster_id != self.cluster_id:
            return False
        try:
            verify_record(self.keys, record, self.clock())
        except SignatureRefused as exc:
            self.log.warning(
                "command refused",
                reason=str(exc),
                event_id=command.event_id,
                type=command.type,
                claimed_caused_by=_cause(command),  # unverified: what the refused command claims
            )
            if not isinstance(command, ClusterSynced):  # a marker names no directive: logged only
                await self.reports.ack(
                    Failed(command.directive_id, command.revision, f"{REFUSED}{exc}"), command.event_id
                )
            return True
        return False

    async def on_command(
        self, command: RestrictCommand | DeltaCommand | LiftCommand, partition: int, offset: int
    ) -> None:
        """A restrict, delta or lift command of this cluster."""
        bind_message_ids(command.directive_id, command.event_id)
        if self.holding.reflects(partition, offset):
            self.log.info("command already reflected in the snapshot: skipped", partition=partition, offset=offset)
            return
        outcome = on_command(self.holding.state, command, self.cluster_id, self.clock())
        if outcome.needs_sets and isinstance(command, RestrictCommand):
            outcome = await self._with_sets(command)
        self.holding.show(outcome)
        if outcome.touched or outcome.held_changed or outcome.received:
            await self.holding.write(command.directive_id, outcome, partition, offset)
        for ack in outcome.acks:
            self.log.info(
                "command applied" if isinstance(ack, Applied) else "command not applied",
                revision=ack.revision,
                reason=getattr(ack, "reason", None),
                caused_by=_cause(command),
            )
            await self.reports.ack(ack, ack.cause or command.event_id)

    async def _with_sets(self, command: RestrictCommand):
        """Apply a restrict command by reference once its set copies are read and checked; refused (state
        unchanged, the agent serving what it holds) when a copy is missing, forged or not what the command says."""
        assert self.sets is not None, "a SetReader reads commands by reference"
        try:
            sets, digests = await self.sets.sets_of(command)
        except SetCopyRefused as exc:
            return refuse_sets(command, str(exc))
        return on_restrict(self.holding.state, command, self.clock(), sets, digests)

    async def on_synced(self, marker: ClusterSynced, partition: int | None, offset: int | None) -> None:
        """Everything in force for this cluster was sent before the marker, so it is applied: record that."""
        bind_message_ids(None, marker.event_id)
        if not self.readiness.syncs(marker.cluster_id, marker.heartbeat_event_id):
            return
        await self.holding.record_synced(marker.event_id, partition, offset)
        self.readiness.synced = True
        self.log.info("synced with the control plane", marker=marker.event_id, held=len(self.holding.state.held))

    async def expire_staging(self, timeout: timedelta) -> None:
        """Discard revisions whose missing chunks did not come in time and report each failure once."""
        for outcome in (await self.holding.expire(self.clock(), timeout)).values():
            for ack in outcome.acks:
                await self.reports.ack(ack, ack.cause)


def _cause(command: ClusterCommand) -> dict | None:
    """Who caused a command, as it says, for the log (the agent acts on the command, not on this)."""
    caused_by = getattr(command, "caused_by", None)
    return None if caused_by is None else caused_by.model_dump(exclude_defaults=True, mode="json")


RULES = Dispatch(
    {  # what the agent does with each message class on its commands partition
        RestrictCommand: CommandHandling.on_command,
        DeltaCommand: CommandHandling.on_command,
        LiftCommand: CommandHandling.on_command,
        ClusterSynced: CommandHandling.on_synced,
    }
)
