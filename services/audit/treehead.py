"""Signed tree heads: the ledger's size and Merkle root, signed with Ed25519, exportable for safekeeping elsewhere.

The signed text is a checkpoint note in the C2SP tlog-checkpoint layout (origin, size, base64 root, one per
line), so a head means the same thing to any tool that reads those notes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from shared.contracts.audit import SignedTreeHead
from shared.runtime.signing import KeySet, Signer

ORIGIN = "countermand.audit/v1"


class HeadRefused(ValueError):
    """A tree head whose signature or content cannot be trusted; the message names why."""


@dataclass(frozen=True)
class TreeHead:
    """A signed statement: the ledger had `size` entries with Merkle root `root` at `signed_at`."""

    size: int
    root: bytes
    signed_at: datetime
    key_id: str
    signature: bytes
    origin: str = ORIGIN

    def note(self) -> bytes:
        return signed_note(self.origin, self.size, self.root, self.signed_at)

    def to_json(self) -> str:
        return json.dumps(
            {
                "origin": self.origin,
                "size": self.size,
                "root": self.root.hex(),
                "signed_at": self.signed_at.isoformat(),
                "key_id": self.key_id,
                "signature": base64.b64encode(self.signature).decode(),
            },
            indent=2,
        )

    def contract(self) -> SignedTreeHead:
        """The head as it travels in an AuditCheckpoint."""
        return SignedTreeHead(**json.loads(self.to_json()))

    @classmethod
    def of_contract(cls, head: SignedTreeHead) -> TreeHead:
        """A head read back from an AuditCheckpoint (HeadRefused if malformed)."""
        return cls.from_json(head.model_dump_json())

    @classmethod
    def from_json(cls, text: str) -> TreeHead:
        try:
            data = json.loads(text)
            signed_at = datetime.fromisoformat(data["signed_at"])
            head = cls(
                int(data["size"]),
                bytes.fromhex(data["root"]),
                signed_at,
                str(data["key_id"]),
                base64.b64decode(data["signature"], validate=True),
                str(data["origin"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise HeadRefused(f"not a tree head: {exc}") from exc
        if head.size < 0 or len(head.root) != 32 or signed_at.tzinfo is None:
            raise HeadRefused("not a tree head: size, root or time out of range")
        return head


def signed_note(origin: str, size: int, root: bytes, signed_at: datetime) -> bytes:
    return (f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n{signed_at.astimezone(UTC).isoformat()}\n").encode()


def sign_head(signer: Signer, size: int, root: bytes, signed_at: datetime) -> TreeHead:
    signature = signer.private_key.sign(signed_note(ORIGIN, size, root, signed_at))
    return TreeHead(size, root, signed_at, signer.key_id, signature)


def verify_head(head: TreeHead, keys: KeySet) -> None:
    """HeadRefused unless `head` is signed by a key of `keys` (retirement does not void past heads)."""
    if head.origin != ORIGIN:
        raise HeadRefused(f"tree head of another log ({head.origin!r})")
    key = keys.get(head.key_id)
    if key is None:
        raise HeadRefused(f"tree head signed by an unknown key {head.key_id!r}")
    if key.retire_at is not None and head.signed_at >= key.retire_at:
        raise HeadRefused(f"tree head signed after its key {head.key_id!r} was retired")
    try:
        key.public_key.verify(head.signature, head.note())
    except InvalidSignature as exc:
        raise HeadRefused(f"tree head of size {head.size}: bad signature") from exc


def export_head(head: TreeHead, folder: Path) -> Path:
    """Write `head` as checkpoint-<size>.json in `folder` (never overwritten: heads are evidence)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint-{head.size:012d}.json"
    if path.exists() and path.read_text() != head.to_json():
        raise HeadRefused(f"{path} already holds a different head of size {head.size}")
    path.write_text(head.to_json())
    return path


def latest_head(folder: Path) -> TreeHead | None:
    """The exported head with the largest size in `folder`, if any."""
    paths = sorted(folder.glob("checkpoint-*.json"))
    return TreeHead.from_json(paths[-1].read_text()) if paths else None
