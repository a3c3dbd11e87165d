"""What a person submits to lift a directive (the directive itself is shared.contracts.directives.DirectiveRequest)."""

from __future__ import annotations

from pydantic import Field

from shared.contracts.envelope import Message


class LiftRequest(Message):
    """Why a directive is lifted."""

    reason: str = Field("", max_length=1000, description="Why it was lifted.", examples=["Order revoked"])
