"""Customer notifications (topic notifications.v1, key = recipient user id)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.directives import DirectiveId, ModelName
from shared.contracts.envelope import Event

NoticeAction = Literal["restricted", "restored"]


class _Notice(Event):
    """Fields every notification message carries."""

    notification_id: str = Field(
        ...,
        description="Deterministic id: one per recipient, directive revision and action.",
        examples=["EXP-2026-001:1:restricted:1042"],
    )
    recipient: int = Field(..., ge=0, description="User id notified.", examples=[1042])
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision.", examples=[1])
    action: NoticeAction = Field(..., description="What happened to the user's access.", examples=["restricted"])


class NotificationRequested(_Notice):
    """A notice is due to a customer."""

    type: Literal["NotificationRequested"] = "NotificationRequested"
    email: str = Field(..., description="Where it goes.", examples=["ada@example.com"])
    models: list[ModelName] = Field(..., min_length=1, description="Models concerned.", examples=[["fable-5"]])
    channel: str = Field("email", description="Delivery channel.", examples=["email"])


class NotificationDelivered(_Notice):
    """A notice reached its channel."""

    type: Literal["NotificationDelivered"] = "NotificationDelivered"
    channel: str = Field("email", description="Delivery channel.", examples=["email"])


class NotificationFailed(_Notice):
    """A notice could not be delivered."""

    type: Literal["NotificationFailed"] = "NotificationFailed"
    reason: str = Field(..., description="Why it failed.", examples=["mailbox unavailable"])


NotificationEvent = Annotated[
    NotificationRequested | NotificationDelivered | NotificationFailed, Field(discriminator="type")
]
