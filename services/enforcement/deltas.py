"""Registry changes after a directive (pure): a delta changes one model's set of a rollout in force, and every
cluster holding the directive is sent it; one that arrives before its rollout started waits with the parts."""

from __future__ import annotations

from datetime import datetime

from pyroaring import BitMap

from services.enforcement.cluster_commands import delta_command, expected_digest
from services.enforcement.command_sender import CommandSender
from services.enforcement.outcome import Outcome, SetDelta
from services.enforcement.rollout import Rollout
from services.enforcement.state import EnforcementState
from services.enforcement.status_events import record_change
from services.enforcement.tracking import expect, mark_sent
from shared.contracts.bitmaps import apply_delta_in_place, decode_bitmap
from shared.contracts.impact import AffectedSetDelta


class Deltas:
    """Incremental enforcement: affected-set deltas applied to the rollouts' sets and sent to their clusters."""

    def __init__(self, state: EnforcementState, sender: CommandSender) -> None:
        self.state = state
        self.sender = sender

    def on_delta(self, message: AffectedSetDelta, now: datetime) -> Outcome:
        out, key = Outcome(), (message.directive_id, message.revision, "restrict")
        added, removed = decode_bitmap(message.added), decode_bitmap(message.removed)
        rollout = self.state.rollouts.get(key)
        if rollout is None:
            if key not in self.state.assemblies:
                out.notes.append(f"delta for unknown assessment {key}: ignored")
                return out
            self.state.assemblies[key].deltas.append(message)
            out.parts.append(message)
            return out
        if not rollout.active or message.seq <= rollout.delta_seq.get(message.model, 0):
            return out
        if message.model not in rollout.scope.models:
            raise ValueError(f"model: {message.model} is not in the scope of {key}")
        self.apply(rollout, message, added, removed)
        out.deltas.append(SetDelta(key, message.model, message.seq, added, removed))
        # Every cluster holding the directive gets every delta: impact numbers seq across the revision's
        # models, so an agent must see each seq to apply them in order without waiting on a gap. A cluster
        # that does not serve the model only advances its seq; its expected digest is unchanged.
        for track in rollout.clusters.values():
            out.commands.append(delta_command(track.cluster_id, message, now))
            if message.model in track.models:
                expect(track, expected_digest(track.models, rollout.model_digests), rollout.due(now))
                mark_sent(track, now)
        record_change(rollout, now, message.event_id, out)
        return out

    def apply(self, rollout: Rollout, delta: AffectedSetDelta, added: BitMap, removed: BitMap) -> None:
        """Apply a delta to the rollout's set of its model, in place: a million-user set is not copied twice."""
        apply_delta_in_place(self.state.sets[rollout.key].setdefault(delta.model, BitMap()), added, removed)
        rollout.model_digests[delta.model] = delta.model_digest
        rollout.delta_seq[delta.model] = delta.seq
