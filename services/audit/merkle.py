"""Merkle tree over the ledger (RFC 9162 section 2.1 hashing): tree heads, inclusion and consistency proofs. Pure.

Leaves are the ledger's entries in order; proofs are lists of 32-byte node hashes, verified exactly as
Certificate Transparency clients verify theirs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes `leaves`, computed bottom-up (same result as the recursive definition)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class Frontier:
    """The roots of the perfect subtrees of an append-only tree: O(log n) memory, O(1) amortised per append."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []  # roots of perfect subtrees, largest first

    def append(self, leaf: bytes) -> None:
        node, size = leaf, self.size
        while size & 1:
            node = node_hash(self._stack.pop(), node)
            size >>= 1
        self._stack.append(node)
        self.size += 1

    def state(self) -> bytes:
        """The frontier as bytes (its subtree roots, 32 bytes each): what a ledger stores to reopen in O(log n)."""
        return b"".join(self._stack)

    @classmethod
    def restore(cls, size: int, state: bytes) -> Frontier:
        """A frontier from `state()` of a tree of `size` leaves; ValueError when they do not fit together."""
        if len(state) % 32 or len(state) // 32 != size.bit_count():
            raise ValueError(f"a frontier of {len(state)} bytes does not fit a tree of {size} leaves")
        frontier = cls()
        frontier.size, frontier._stack = size, [state[i : i + 32] for i in range(0, len(state), 32)]
        return frontier

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 2.1.3.1: the audit path of leaf `index` in the tree of `leaves`."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)}")
    return _path(leaves, index)


def _path(leaves: Sequence[bytes], m: int) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return _path(leaves[:k], m) + [root(leaves[k:])]
    return _path(leaves[k:], m - k) + [root(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` show leaf hash `leaf` at `index` in the tree of `size` with `expected_root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1: that the tree of the first `old_size` leaves is a prefix of `leaves`."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {len(leaves)}")
    return _subproof(leaves, old_size, True)


def _subproof(leaves: Sequence[bytes], m: int, whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [root(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(leaves[:k], m, whole) + [root(leaves[k:])]
    return _subproof(leaves[k:], m - k, False) + [root(leaves[:k])]


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does `proof` show the tree (old_size, old_root) is a prefix of (new_size, new_root)?"""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
