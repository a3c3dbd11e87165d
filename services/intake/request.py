"""What a person submits to lift a directive (the directive itself is shared.contracts.directives.DirectiveRequest)."""

from __future__ import annotations

from shared.contracts.directives import LiftReason
from shared.contracts.envelope import Message


class LiftRequest(Message):
    """Why a directive is lifted."""

    reason: LiftReason = ""
