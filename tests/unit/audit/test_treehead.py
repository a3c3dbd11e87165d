"""Signed tree heads: verified with the exported key, and every tampering refused with its reason."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from services.audit.merkle import leaf_hash, root
from services.audit.treehead import HeadRefused, TreeHead, export_head, latest_head, sign_head, verify_head
from shared.runtime.signing import KeySet, Signer

AT = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
ROOT = root([leaf_hash(b"a"), leaf_hash(b"b")])


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("audit-1")


def test_a_signed_head_round_trips_and_verifies(signer: Signer) -> None:
    head = sign_head(signer, 2, ROOT, AT)
    again = TreeHead.from_json(head.to_json())
    assert again == head
    verify_head(again, KeySet([signer.public()]))


@pytest.mark.parametrize("change", [{"size": 3}, {"root": leaf_hash(b"x")}, {"signed_at": AT + timedelta(1)}])
def test_a_head_whose_size_root_or_time_was_changed_is_refused(signer: Signer, change: dict) -> None:
    forged = dataclasses.replace(sign_head(signer, 2, ROOT, AT), **change)
    with pytest.raises(HeadRefused, match="bad signature"):
        verify_head(forged, KeySet([signer.public()]))


def test_a_head_signed_by_another_key_is_refused(signer: Signer) -> None:
    with pytest.raises(HeadRefused, match="unknown key"):
        verify_head(sign_head(Signer.generate("mallory"), 2, ROOT, AT), KeySet([signer.public()]))


def test_a_head_signed_after_its_key_retired_is_refused(signer: Signer) -> None:
    keys = KeySet([signer.public(retire_at=AT)])
    verify_head(sign_head(signer, 2, ROOT, AT - timedelta(seconds=1)), keys)
    with pytest.raises(HeadRefused, match="retired"):
        verify_head(sign_head(signer, 2, ROOT, AT), keys)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        '{"size": 1}',
        "not json",
        '{"origin": "o", "size": -1, "root": "00", "signed_at": "2026-01-01T00:00:00+00:00",'
        ' "key_id": "k", "signature": ""}',
    ],
)
def test_a_file_that_is_not_a_head_is_refused_clearly(text: str) -> None:
    with pytest.raises(HeadRefused, match="not a tree head"):
        TreeHead.from_json(text)


def test_exported_heads_are_never_overwritten_and_the_latest_is_found(signer: Signer, tmp_path) -> None:
    export_head(sign_head(signer, 2, ROOT, AT), tmp_path)
    export_head(sign_head(signer, 10, ROOT, AT), tmp_path)
    assert latest_head(tmp_path).size == 10
    export_head(sign_head(signer, 2, ROOT, AT), tmp_path)  # the same head again is fine
    with pytest.raises(HeadRefused, match="different head"):
        export_head(sign_head(signer, 2, leaf_hash(b"other"), AT), tmp_path)
