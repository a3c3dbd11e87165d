"""What one message or tick of the enforcement core produced: messages to publish and state to persist."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyroaring import BitMap

from shared.contracts.impact import AssessmentKey


@dataclass(frozen=True)
class SetDelta:
    """A delta applied to one model's set of a rollout: what the store appends to that set's log."""

    key: AssessmentKey
    model: str
    seq: int
    added: BitMap
    removed: BitMap


@dataclass
class Outcome:
    """What one message or tick produced: messages to publish and state to persist."""

    commands: list[Any] = field(default_factory=list)
    markers: list[Any] = field(default_factory=list)  # ClusterSynced: published once the commands are acknowledged
    events: list[Any] = field(default_factory=list)
    rollouts: set[AssessmentKey] = field(default_factory=set)
    sets: set[AssessmentKey] = field(default_factory=set)  # every model's set rewritten
    deltas: list[SetDelta] = field(default_factory=list)  # one model's set changed by a delta (logged, not rewritten)
    clusters: set[str] = field(default_factory=set)
    parts: list[Any] = field(default_factory=list)  # assessment parts to keep until complete
    assembled: set[AssessmentKey] = field(default_factory=set)  # assemblies done (their parts can go)
    notes: list[str] = field(default_factory=list)  # warnings worth a log line
