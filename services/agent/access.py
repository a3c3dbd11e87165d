"""Allow/deny decisions over the held restrictions, and the in-process API a gateway embeds
(`agent.checker`: denies, denies_many, check; see the agent README for the API and its rules).
"""

from __future__ import annotations

import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import inf, nextafter
from typing import Literal

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from services.agent.restrictions import HeldRestriction, PendingDelta, Window

EVERYONE = FrozenBitMap(range(0, 2**32))  # every 32-bit user id: a model denied outright while stale
NOBODY = FrozenBitMap()
DAWN, DUSK = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


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
class Entry:
    """One directive's denied users for one model."""

    directive: str
    window: Window
    users: BitMap
    deny_when_stale: bool

    def denies(self, user: int, now: datetime, stale: bool) -> bool:
        return self.window.contains(now) and ((stale and self.deny_when_stale) or user in self.users)


@dataclass(frozen=True)
class View:
    """Per model, everyone an in-force directive denies; valid for `since <= now < until`."""

    denied: dict[str, BitMap]
    since: datetime
    until: datetime
    stale: bool
    unions: dict[str, tuple[Entry, ...]] = field(default_factory=dict)  # models whose set is a union of these


def fold_deltas(view: dict[str, BitMap], unions: dict[str, tuple[Entry, ...]], deltas: Iterable[PendingDelta]) -> None:
    """Deltas already applied in place to a directive's held sets, folded into a view's unions (a model
    denied by one directive shares that directive's set: nothing to do). A removed user stays denied when
    another in-force directive holds it. Costs what the deltas touch."""
    for delta in deltas:
        entries, denied = unions.get(delta.model), view.get(delta.model)
        if entries is None or denied is None:
            continue
        denied |= delta.added
        if delta.removed:
            kept = BitMap.union(BitMap(), *(e.users & delta.removed for e in entries))
            denied -= delta.removed - kept


@dataclass(frozen=True)
class AccessIndex:
    """For each model, the directives that restrict it with their window and denied users."""

    by_model: dict[str, tuple[Entry, ...]]

    @classmethod
    def of(cls, held: dict[str, HeldRestriction]) -> AccessIndex:
        by_model: dict[str, list[Entry]] = {}
        for directive in sorted(held):
            restriction = held[directive]
            for model, users in restriction.sets.items():
                by_model.setdefault(model, []).append(
                    Entry(directive, restriction.window, users, restriction.on_stale == "deny_models")
                )
        return cls({model: tuple(entries) for model, entries in by_model.items()})

    def check(self, user: int, model: str, now: datetime, stale: bool = False) -> Decision:
        denying = tuple(e.directive for e in self.by_model.get(model, ()) if e.denies(user, now, stale))
        return Decision(user, model, "deny" if denying else "allow", denying)

    def view(self, now: datetime, stale: bool = False) -> View:
        """The union per model of the directives in force at `now`, and how long that holds."""
        denied: dict[str, BitMap] = {}
        unions: dict[str, tuple[Entry, ...]] = {}
        for model, entries in self.by_model.items():
            active = [e for e in entries if e.window.contains(now)]
            if stale and any(e.deny_when_stale for e in active):
                denied[model] = EVERYONE
            elif len(active) > 1:
                denied[model], unions[model] = BitMap.union(*(e.users for e in active)), tuple(active)
            elif active:
                denied[model] = active[0].users
        since, until = self._span(now)
        return View(denied, since, until, stale, unions)

    def _span(self, now: datetime) -> tuple[datetime, datetime]:
        bounds = {
            b
            for entries in self.by_model.values()
            for e in entries
            for b in (e.window.effective_from, e.window.expires_at)
            if b is not None
        }
        return max((b for b in bounds if b <= now), default=DAWN), min((b for b in bounds if b > now), default=DUSK)


class NotReady(Exception):
    """The agent has not caught up with its commands yet: no decision can be given (never allow)."""


class AccessChecker:
    """The in-process API a gateway can embed: answers checks once the agent has caught up (see module doc)."""

    def __init__(self, stale_after: timedelta | None = None) -> None:
        self._index = AccessIndex({})
        self._ready = False
        self._stale_after = stale_after
        self._last_contact: datetime | None = None
        self._stale_view = False
        # (valid from, valid until, denied per model) as POSIX seconds: read with one attribute load, so a
        # gateway thread sees one consistent view. The empty span sends every check to the slow path.
        self._view: tuple[float, float, dict[str, BitMap]] = (inf, -inf, {})
        self._unions: dict[str, tuple[Entry, ...]] = {}  # of the current view: where deltas must be folded in

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def last_contact(self) -> datetime | None:
        return self._last_contact

    def mark_ready(self, now: datetime | None = None) -> None:
        """The agent has caught up; catching up is hearing from the control plane."""
        if now is not None:
            self.heard(now)
        self._ready = True

    def heard(self, now: datetime) -> None:
        """The agent heard from the control plane at `now` (a command arrived or a broker round trip succeeded)."""
        if self._last_contact is None or now > self._last_contact:
            self._last_contact = now
        if self._stale_view:
            self._view, self._unions = (inf, -inf, {}), {}

    def stale(self, now: datetime) -> bool:
        """Whether the agent has heard nothing from the control plane for longer than its bound."""
        return (
            self._stale_after is not None
            and self._last_contact is not None
            and now - self._last_contact > self._stale_after
        )

    def replace(self, held: dict[str, HeldRestriction]) -> None:
        """Swap in a new index built from the held restrictions (one assignment: checks see old or new)."""
        self._index = AccessIndex.of(held)
        self._view, self._unions = (inf, -inf, {}), {}

    def apply_deltas(self, deltas: Iterable[PendingDelta]) -> None:
        """Deltas were applied in place to held sets the index shares: bring the check view's unions along
        (the index itself needs nothing). Costs what the deltas touch, not the size of the sets."""
        fold_deltas(self._view[2], self._unions, deltas)

    def denies(self, user: int, model: str, at: float) -> bool:
        """Whether (user, model) is denied at `at` (POSIX seconds, e.g. time.time()); raises NotReady before
        the agent has caught up. The hot path: one tuple load, two float comparisons, one lookup, one `in`."""
        since, until, denied = self._view
        if not since <= at < until:
            since, until, denied = self._refresh(at)
        return user in denied.get(model, NOBODY)

    def denies_many(self, users: np.ndarray, model: str, at: float) -> np.ndarray:
        """For each user id (uint32-compatible array), whether it is denied the model at `at` (POSIX seconds);
        in input order. Raises NotReady before the agent has caught up."""
        since, until, denied_by_model = self._view
        if not since <= at < until:
            since, until, denied_by_model = self._refresh(at)
        ids = np.asarray(users, dtype=np.uint32)
        denied = denied_by_model.get(model, NOBODY)
        if denied is EVERYONE:
            return np.ones(len(ids), dtype=bool)
        if not denied or not len(ids):
            return np.zeros(len(ids), dtype=bool)
        # A bitmap built from sorted ids is cheap; intersecting leaves only the denied ids to find again.
        asked = BitMap(array.array("I", np.sort(ids).tobytes()))
        return np.isin(ids, np.frombuffer((asked & denied).to_array(), dtype=np.uint32))

    def check(self, user: int, model: str, now: datetime) -> Decision:
        """The decision for one pair with the directives denying it; raises NotReady before catching up."""
        if not self._ready:
            raise NotReady("agent is catching up with its commands")
        return self._index.check(user, model, now, self.stale(now))

    def _refresh(self, at: float) -> tuple[float, float, dict[str, BitMap]]:
        if not self._ready:
            raise NotReady("agent is catching up with its commands")
        now = datetime.fromtimestamp(at, UTC)
        stale = self.stale(now)
        view = self._index.view(now, stale)
        since, until = _seconds(view.since), _seconds(view.until)
        if self._stale_after is not None and self._last_contact is not None:
            # stale means strictly more than stale_after since the last contact
            deadline = (self._last_contact + self._stale_after).timestamp()
            just_after = nextafter(deadline, inf)
            since, until = (max(since, just_after), until) if stale else (since, min(until, just_after))
        self._stale_view = stale
        self._unions = view.unions
        self._view = (since, until, view.denied)
        return self._view


def _seconds(moment: datetime) -> float:
    return -inf if moment == DAWN else inf if moment == DUSK else moment.timestamp()
