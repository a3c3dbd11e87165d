"""Sends a rollout's commands to one cluster (pure): a restriction as a draft naming each served model's set at
its version (the service places the set copies once, SetCopies), or the lift."""

from __future__ import annotations

from datetime import datetime

from services.enforcement.cluster_commands import RestrictDraft, lift_command
from services.enforcement.outcome import Outcome
from services.enforcement.rollout import Rollout
from services.enforcement.state import EnforcementState
from services.enforcement.tracking import ClusterTrack, mark_sent


class CommandSender:
    """Turns (rollout, cluster track) into the commands of one send."""

    def __init__(self, state: EnforcementState) -> None:
        self.state = state

    def send(self, rollout: Rollout, track: ClusterTrack, now: datetime, cause: str | None, out: Outcome) -> None:
        mark_sent(track, now)
        if rollout.action == "lift":
            out.commands.append(
                lift_command(
                    track.cluster_id,
                    rollout.directive_id,
                    rollout.revision,
                    attempt=track.attempts,
                    now=now,
                    cause=cause,
                    caused_by=rollout.caused_by,
                )
            )
            return
        out.commands.append(
            RestrictDraft(
                track.cluster_id,
                rollout.directive_id,
                rollout.revision,
                rollout.key,
                rollout.scope,
                tuple((model, rollout.delta_seq.get(model, 0)) for model in track.models),
                track.expected_digest,
                track.attempts,
                now,
                cause,
                rollout.caused_by,
            )
        )
