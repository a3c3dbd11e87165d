"""When the ledger publishes a checkpoint (pure: time is an argument)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckpointPolicy:
    """Every `every` new entries, or `interval_s` after the last checkpoint if anything was added."""

    every: int
    interval_s: float

    def due(self, entries: int, last_entries: int, now: float, last_at: float) -> bool:
        added = entries - last_entries
        return added >= self.every or (added > 0 and now - last_at >= self.interval_s)
