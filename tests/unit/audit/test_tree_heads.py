"""The ledger's Merkle tree: kept across restarts and batches, rebuilt for a ledger written before leaves were
stored; and the service refuses to start without a signing key unless told it is a development run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.audit.ledger import Ledger, leaf_of
from services.audit.merkle import root
from services.audit.signing_key import RunSettings
from shared.runtime.signing import Signer
from tests.unit.audit.records import directive_story


def test_the_tree_head_is_the_same_in_batches_after_a_restart_and_from_scratch(tmp_path: Path) -> None:
    records = directive_story("EXP-1", notices=9)
    ledger = Ledger(tmp_path / "a.sqlite")
    ledger.append(records[:4])
    ledger.close()
    ledger = Ledger(tmp_path / "a.sqlite")
    ledger.append(records[4:])
    size, top = ledger.tree_head()
    expected = root([leaf_of(e) for e in ledger.entries()])
    ledger.close()
    assert (size, top) == (len(records), expected)


def test_a_ledger_without_stored_leaves_gets_them_at_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    ledger = Ledger(path)
    ledger.append(directive_story("EXP-2", notices=3))
    before = ledger.tree_head()
    ledger.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE leaves")
    assert Ledger(path, read_only=True).leaves() == [leaf_of(e) for e in Ledger(path, read_only=True).entries()]
    assert Ledger(path).tree_head() == before


def test_the_service_refuses_to_start_without_a_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COUNTERMAND_AUDIT_SIGNING_KEY_FILE", raising=False)
    with pytest.raises(ValidationError, match="no signing key"):
        RunSettings()
    assert RunSettings(unsigned_dev=True).signing_key_file is None


def test_a_signing_key_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(ValidationError, match="SIGNING_KEY_FILE"):
        RunSettings(signing_key_file=tmp_path / "key.pem")
    (tmp_path / "good.pem").write_bytes(Signer.generate("a").pem())
    assert RunSettings(signing_key_file=tmp_path / "good.pem").signing_key_id == "audit-1"
