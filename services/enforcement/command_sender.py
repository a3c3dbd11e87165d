"""Sends a rollout's commands to one cluster (pure): the restrict chunks of the models it serves, encoded once
per model and shared by every cluster and re-send, or the lift."""

from __future__ import annotations

from datetime import datetime

from pyroaring import BitMap

from services.enforcement.cluster_commands import encoded_chunks, lift_command, restrict_commands
from services.enforcement.outcome import Outcome
from services.enforcement.rollout import Rollout
from services.enforcement.state import EnforcementState
from services.enforcement.tracking import ClusterTrack, mark_sent
from shared.contracts.impact import AssessmentKey


class CommandSender:
    """Turns (rollout, cluster track) into the commands of one send; keeps the wire chunks of each set."""

    def __init__(self, state: EnforcementState, ids_per_chunk: int = 200_000, chunk_chars: int = 1_500_000) -> None:
        self.state = state
        self.ids_per_chunk = ids_per_chunk
        self.chunk_chars = chunk_chars  # base64 characters per RestrictCommand at most
        self.encoded: dict[AssessmentKey, dict[str, list[str]]] = {}  # cache of sets as wire chunks

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
        out.commands.extend(
            restrict_commands(
                track.cluster_id,
                rollout.directive_id,
                rollout.revision,
                rollout.scope,
                self._chunks(rollout.key, track.models),
                track.models,
                track.expected_digest,
                attempt=track.attempts,
                now=now,
                cause=cause,
                caused_by=rollout.caused_by,
            )
        )

    def set_changed(self, key: AssessmentKey, model: str) -> None:
        """A delta changed this model's set: encode it afresh at the next send."""
        self.encoded.get(key, {}).pop(model, None)

    def forget(self, key: AssessmentKey) -> None:
        """The rollout is no longer sent."""
        self.encoded.pop(key, None)

    def _chunks(self, key: AssessmentKey, models: list[str]) -> dict[str, list[str]]:
        cache = self.encoded.setdefault(key, {})
        for model in models:
            if model not in cache:
                sets = self.state.sets[key]
                cache[model] = encoded_chunks(sets.get(model, BitMap()), self.ids_per_chunk, self.chunk_chars)
        return cache
