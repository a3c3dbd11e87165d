"""Whether and when a failed delivery is tried again: transient failures back off exponentially with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["delivered", "transient", "permanent"]


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to; `reason` names the failure (an SMTP reply, an HTTP status, an error)."""

    verdict: Verdict
    reason: str = ""


DELIVERED = Outcome("delivered")


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits uniformly in [0, min(cap, base * 2**n)]."""

    base_s: float = 0.5
    cap_s: float = 60.0
    attempts: int = 6

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * 2**attempt)
        return (rng or random).uniform(0, ceiling)

    def gives_up(self, attempt: int) -> bool:
        """True once `attempt` (0-based) was the last one allowed."""
        return attempt + 1 >= self.attempts
