"""Audit checkpoints (topic audit.checkpoints.v1, key = ledger id)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.envelope import Event, Message


class SignedTreeHead(Message):
    """The ledger's size and RFC 9162 Merkle root, signed with the audit's Ed25519 key (C2SP checkpoint note)."""

    origin: str = Field(
        "countermand.audit/v1", description="Log the head belongs to.", examples=["countermand.audit/v1"]
    )
    size: int = Field(..., ge=0, description="Entries covered by the tree.", examples=[120345])
    root: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="Merkle tree root, hex.", examples=["9f86d081..."])
    signed_at: AwareDatetime = Field(..., description="When the head was signed.", examples=["2026-11-27T09:05:00Z"])
    key_id: str = Field(..., description="Id of the signing key (see the exported JWK set).", examples=["audit-1"])
    signature: str = Field(..., description="Base64 Ed25519 signature of the checkpoint note.", examples=["MEUCIQ..."])


class AuditCheckpoint(Event):
    """The audit ledger reached this length and head hash; signed tree head included unless in unsigned dev mode."""

    type: Literal["AuditCheckpoint"] = "AuditCheckpoint"
    ledger: str = Field("main", description="Ledger id.", examples=["main"])
    entries: int = Field(..., ge=0, description="Entries in the ledger.", examples=[120345])
    head_hash: str = Field(..., description="Hash of the newest entry.", examples=["9f86d081..."])
    tree_head: SignedTreeHead | None = Field(
        None, description="Signed Merkle tree head over the same entries (null only in unsigned dev mode)."
    )
