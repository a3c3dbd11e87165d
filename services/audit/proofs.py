"""Checking a ledger against signed tree heads, and its Merkle proofs. Pure: entries and heads come in.

One pass over the entries recomputes the hash chain, every leaf hash and the tree root at each size a head
names, so a record altered, removed, reordered or inserted shows either as a broken chain or as a root that
no longer matches a head signed before; a chain rewritten whole (and re-linked) still fails the signed root.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from services.audit.chain import Entry, Verdict, canonical
from services.audit.chain import verify as verify_chain
from services.audit.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from services.audit.treehead import HeadRefused, TreeHead, verify_head
from shared.runtime.signing import KeySet

Position = tuple[str, int, int]


@dataclass(frozen=True)
class HeadCheck:
    """One signed head held against the ledger: None when it matches, else why not."""

    head: TreeHead
    problem: str | None


@dataclass
class LedgerCheck:
    """What one pass over the ledger found: the chain's verdict, the tree, each head's check, the leaves."""

    chain: Verdict
    size: int = 0
    root: bytes = b""
    heads: list[HeadCheck] = field(default_factory=list)
    leaves: dict[Position, bytes] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.chain.intact and all(h.problem is None for h in self.heads)


def check_ledger(entries: Iterable[Entry], heads: Sequence[TreeHead], keys: KeySet | None) -> LedgerCheck:
    """Walk the entries once: chain, Merkle root at every head's size, each head's signature."""
    wanted = {h.size: h for h in heads}
    roots: dict[int, bytes] = {}
    frontier, leaves = Frontier(), {}

    def leafed(stream: Iterable[Entry]) -> Iterable[Entry]:
        for entry in stream:
            leaf = leaf_hash(canonical(entry.record))
            frontier.append(leaf)
            leaves[(entry.record.topic, entry.record.partition, entry.record.offset)] = leaf
            if frontier.size in wanted:
                roots[frontier.size] = frontier.root()
            yield entry

    stream = leafed(entries)
    verdict = verify_chain(stream)
    for _ in stream:  # past a broken link: the tree still covers every entry, for the heads' verdicts
        pass
    result = LedgerCheck(verdict, frontier.size, frontier.root(), leaves=leaves)
    result.heads = [HeadCheck(h, _head_problem(h, roots, frontier.size, keys)) for h in heads]
    return result


def _head_problem(head: TreeHead, roots: dict[int, bytes], size: int, keys: KeySet | None) -> str | None:
    if keys is not None:
        try:
            verify_head(head, keys)
        except HeadRefused as exc:
            return str(exc)
    if head.size > size:
        return f"head of size {head.size} but the ledger holds {size} entries (entries removed from the end)"
    if head.size == 0:
        return None
    if roots.get(head.size) != head.root:
        return (
            f"root of the first {head.size} entries differs from the signed head "
            "(records altered, removed, reordered or inserted)"
        )
    return None


@dataclass(frozen=True)
class Inclusion:
    """An inclusion proof of the entry at seq in the tree of `size` entries, and whether it verifies."""

    seq: int
    leaf: bytes
    size: int
    root: bytes
    path: list[bytes]
    verified: bool


def prove_inclusion(entry: Entry, leaves: Sequence[bytes], size: int, expected_root: bytes) -> Inclusion:
    """The audit path of `entry` (leaf recomputed from its record) in the first `size` leaves, checked
    against `expected_root` (a signed head's root)."""
    leaf = leaf_hash(canonical(entry.record))
    path = inclusion_proof(leaves[:size], entry.seq - 1)
    return Inclusion(
        entry.seq, leaf, size, expected_root, path, verify_inclusion(leaf, entry.seq - 1, size, path, expected_root)
    )


@dataclass(frozen=True)
class Consistency:
    """A consistency proof that the tree of `old` is a prefix of the tree of `new`, and whether it verifies."""

    old: TreeHead
    new: TreeHead
    path: list[bytes]
    verified: bool


def prove_consistency(old: TreeHead, new: TreeHead, leaves: Sequence[bytes]) -> Consistency:
    """Build the proof from the ledger's leaves and check it against both signed roots."""
    if old.size > new.size:
        old, new = new, old
    if new.size > len(leaves) or old.size == 0:
        return Consistency(old, new, [], False)
    path = [] if old.size == new.size else consistency_proof(leaves[: new.size], old.size)
    return Consistency(old, new, path, verify_consistency(old.size, new.size, old.root, new.root, path))
