"""Allow/deny decisions over the held restrictions: a per-model index of bitmaps (pure, time passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pyroaring import BitMap

from services.agent.restrictions import HeldRestriction, Window


@dataclass(frozen=True)
class Decision:
    """The answer for one (user, model): deny iff some in-force directive holds the user for the model."""

    user: int
    model: str
    decision: Literal["allow", "deny"]
    directives: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


@dataclass(frozen=True)
class AccessIndex:
    """For each model, the directives that restrict it with their window and denied users."""

    by_model: dict[str, tuple[tuple[str, Window, BitMap], ...]]

    @classmethod
    def of(cls, held: dict[str, HeldRestriction]) -> AccessIndex:
        by_model: dict[str, list[tuple[str, Window, BitMap]]] = {}
        for directive in sorted(held):
            restriction = held[directive]
            for model, users in restriction.sets.items():
                by_model.setdefault(model, []).append((directive, restriction.window, users))
        return cls({model: tuple(entries) for model, entries in by_model.items()})

    def check(self, user: int, model: str, now: datetime) -> Decision:
        denying = tuple(d for d, window, users in self.by_model.get(model, ()) if user in users and window.contains(now))
        return Decision(user, model, "deny" if denying else "allow", denying)


class NotReady(Exception):
    """The agent has not caught up with its commands yet: no decision can be given (never allow)."""


class AccessChecker:
    """The in-process API a gateway can embed: answers checks once the agent has caught up."""

    def __init__(self) -> None:
        self._index = AccessIndex({})
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def mark_ready(self) -> None:
        self._ready = True

    def replace(self, held: dict[str, HeldRestriction]) -> None:
        """Swap in a new index built from the held restrictions (one assignment: checks see old or new)."""
        self._index = AccessIndex.of(held)

    def check(self, user: int, model: str, now: datetime) -> Decision:
        """The decision for one pair; raises NotReady before the agent has caught up."""
        if not self._ready:
            raise NotReady("agent is catching up with its commands")
        return self._index.check(user, model, now)
