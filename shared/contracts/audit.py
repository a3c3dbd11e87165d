"""Audit checkpoints (topic audit.checkpoints.v1, key = ledger id)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.envelope import Event


class AuditCheckpoint(Event):
    """The audit ledger reached this length and head hash."""

    type: Literal["AuditCheckpoint"] = "AuditCheckpoint"
    ledger: str = Field("main", description="Ledger id.", examples=["main"])
    entries: int = Field(..., ge=0, description="Entries in the ledger.", examples=[120345])
    head_hash: str = Field(..., description="Hash of the newest entry.", examples=["9f86d081..."])
