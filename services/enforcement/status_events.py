"""When a rollout's status events are due (pure): progress on every change, the verdict once, overdue when the
set of late clusters changes. The events themselves are built by the rollout."""

from __future__ import annotations

from datetime import datetime

from services.enforcement.outcome import Outcome
from services.enforcement.rollout import Rollout


def record_change(rollout: Rollout, now: datetime, cause: str | None, out: Outcome) -> None:
    """Every state change is published; the verdict once, when every target applied."""
    out.rollouts.add(rollout.key)
    out.events.append(rollout.progressed(now, cause))
    if not rollout.enforced and rollout.all_applied:
        rollout.enforced = True
        out.events.append(rollout.enforced_event(now, cause))


def record_overdue(rollout: Rollout, now: datetime, out: Outcome) -> None:
    """An overdue event when the clusters past the deadline differ from the ones last reported."""
    overdue = rollout.overdue()
    if overdue and overdue != rollout.overdue_reported:
        rollout.overdue_reported = overdue
        out.events.append(rollout.overdue_event(now, overdue))
        out.rollouts.add(rollout.key)  # the event counter behind deterministic ids must persist
