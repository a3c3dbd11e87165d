"""What the agent tells the control plane on serving.acks.v1: acks of commands and heartbeats, each naming the
replica that sends it and signed with its cluster's key (enforcement counts only those)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.agent.command_effects import Applied, Failed
from services.agent.restrictions import Restrictions
from services.agent.settings import AgentSettings
from shared.contracts.catalogue import ACKS
from shared.contracts.envelope import envelope
from shared.contracts.serving import AgentHeartbeat, CommandApplied, CommandFailed, HeldDirective
from shared.runtime.broker import emit
from shared.runtime.signing import Signer

PRODUCER = "agent"


@dataclass
class Reports:
    """The acks publisher of one cluster's agent and the key it signs with (None: signing off)."""

    publisher: Any
    signer: Signer | None
    settings: AgentSettings
    log: Any

    async def ack(self, ack: Applied | Failed, causation: str | None) -> None:
        """Acknowledge a command (applied, or failed with the reason), once what it changed is durable."""
        await emit(self.publisher, ACKS, self.message(ack, causation), signer=self.signer)

    def message(self, ack: Applied | Failed, causation: str | None) -> CommandApplied | CommandFailed:
        common = {
            **envelope(PRODUCER, correlation_id=ack.directive_id, causation_id=causation),
            "cluster_id": self.settings.cluster_id,
            "replica_id": self.settings.replica_id,
            "directive_id": ack.directive_id,
            "revision": ack.revision,
        }
        if isinstance(ack, Failed):
            self.log.warning("command rejected", reason=ack.reason)
            return CommandFailed(reason=ack.reason, **common)
        return CommandApplied(action=ack.action, digest=ack.digest, seq=ack.seq, **common)

    def heartbeat(self, state: Restrictions, offsets: dict[int, int], ready: bool) -> AgentHeartbeat:
        """What the replica holds (revision and digest per directive), the offsets it reflects, and readiness."""
        held = {d: HeldDirective(revision=h.revision, digest=h.digest) for d, h in state.held.items()}
        return AgentHeartbeat(
            **envelope(PRODUCER),
            cluster_id=self.settings.cluster_id,
            replica_id=self.settings.replica_id,
            region=self.settings.region,
            models=list(self.settings.models),
            held=held,
            offsets=dict(offsets),
            ready=ready,
        )

    async def send(self, beat: AgentHeartbeat) -> None:
        """Publish a heartbeat."""
        await emit(self.publisher, ACKS, beat, signer=self.signer)
