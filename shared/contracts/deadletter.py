"""Dead letters: a message a consumer could not process, with the reason (topic dlq.<service>.v1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.envelope import Event


class DeadLetter(Event):
    """A message set aside by a consumer, with everything needed to inspect or replay it."""

    type: Literal["DeadLetter"] = "DeadLetter"
    consumer: str = Field(..., description="Consumer group that gave up on it.", examples=["impact"])
    topic: str = Field(..., description="Topic it came from.", examples=["identity.users.v1"])
    partition: int = Field(..., ge=0, description="Partition it came from.", examples=[0])
    offset: int = Field(..., ge=0, description="Offset it had.", examples=[42])
    key_b64: str | None = Field(None, description="Original key, base64.", examples=["MTA0Mg=="])
    headers: dict[str, str] = Field(default_factory=dict, description="Original headers (base64 values).",
                                    examples=[{}])
    value_b64: str | None = Field(None, description="Original value, base64.", examples=["e30="])
    reason: str = Field(..., description="Why it could not be processed.",
                        examples=["user_id: Input should be greater than or equal to 0"])
