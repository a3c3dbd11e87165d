"""The ledger's Merkle tree: RFC 9162 known answers, and every proof checked against a recursive reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The test vector of Certificate Transparency's reference implementations (RFC 6962 hashing).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 2.1.1 defines it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def hashes(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_the_certificate_transparency_roots_for_one_to_eight_leaves() -> None:
    leaves = [leaf_hash(d) for d in CT_LEAVES]
    assert [root(leaves[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    assert root([]) == EMPTY_ROOT == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200))
def test_root_and_frontier_agree_with_the_recursive_definition(n: int) -> None:
    leaves = hashes(n)
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert root(leaves) == reference_root(leaves) == frontier.root()
    assert frontier.size == n


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100])
def test_every_leaf_has_a_valid_inclusion_proof_and_a_wrong_claim_fails(n: int) -> None:
    leaves = hashes(n)
    head = root(leaves)
    for i, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaf, i, n, proof, head)
        assert not verify_inclusion(leaf_hash(b"forged"), i, n, proof, head)
        assert not verify_inclusion(leaf, i, n, proof, leaf_hash(b"other root"))
        if n > 1:
            assert not verify_inclusion(leaf, (i + 1) % n, n, proof, head)
            assert not verify_inclusion(leaf, i, n, proof[:-1], head)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 120), st.data())
def test_consistency_proofs_hold_between_any_two_sizes(n: int, data: st.DataObject) -> None:
    leaves = hashes(n)
    m = data.draw(st.integers(1, n))
    proof = consistency_proof(leaves, m)
    assert verify_consistency(m, n, root(leaves[:m]), root(leaves), proof)
    if m < n:
        assert not verify_consistency(m, n, root(leaves[:m]), root(leaves[: n - 1] + [leaf_hash(b"x")]), proof)
        altered = list(leaves)
        altered[m - 1] = leaf_hash(b"rewritten")
        assert not verify_consistency(m, n, root(altered[:m]), root(leaves), proof)


def test_a_rewritten_history_is_not_consistent_with_an_exported_head() -> None:
    leaves = hashes(10)
    old_root = root(leaves[:6])
    rewritten = leaves[:3] + [leaf_hash(b"removed and replaced")] + leaves[4:]
    assert not verify_consistency(6, 10, old_root, root(rewritten), consistency_proof(rewritten, 6))


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(IndexError):
        inclusion_proof(hashes(3), 3)
    with pytest.raises(ValueError):
        consistency_proof(hashes(3), 0)
    assert not verify_inclusion(hashes(1)[0], 5, 3, [], EMPTY_ROOT)
