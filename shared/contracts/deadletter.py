"""Dead letters: a message a consumer could not process, with the reason (topic dlq.<service>.v1); a copy of
the record when it fits, a reference otherwise (see shared/README.md, Dead letters).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.envelope import Event, Message


class OmittedBytes(Message):
    """A part of a record too large to copy into a dead letter: enough to recognise it, and where it is."""

    size: int = Field(..., ge=0, description="Length of the part in bytes.", examples=[1992294])
    sha256: str = Field(
        ...,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the part, lowercase hex.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    head_b64: str = Field(..., description="Its first bytes (at most 1 KiB), base64.", examples=["eyJ0eXBlIjo="])


class DeadLetter(Event):
    """A message set aside by a consumer, with everything needed to inspect or replay it."""

    type: Literal["DeadLetter"] = "DeadLetter"
    consumer: str = Field(..., description="Consumer group that gave up on it.", examples=["impact"])
    topic: str = Field(..., description="Topic it came from.", examples=["identity.users.v1"])
    partition: int = Field(..., ge=0, description="Partition it came from.", examples=[0])
    offset: int = Field(..., ge=0, description="Offset it had.", examples=[42])
    key_b64: str | None = Field(
        None, description="Original key, base64 (null when absent or omitted).", examples=["MTA0Mg=="]
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Original headers (base64 values); empty when omitted.", examples=[{}]
    )
    value_b64: str | None = Field(
        None, description="Original value, base64 (null when absent or omitted).", examples=["e30="]
    )
    reason: str = Field(
        ...,
        description="Why it could not be processed.",
        examples=["user_id: Input should be greater than or equal to 0"],
    )
    value_omitted: OmittedBytes | None = Field(
        None, description="The value, when too large to copy: its size, hash and first bytes.", examples=[None]
    )
    key_omitted: OmittedBytes | None = Field(
        None, description="The key, when too large to copy: its size, hash and first bytes.", examples=[None]
    )
    headers_omitted: OmittedBytes | None = Field(
        None, description="The headers (as name=base64 lines), when too large to copy.", examples=[None]
    )
