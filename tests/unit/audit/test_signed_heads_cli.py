"""`countermand audit verify|prove|consistency` against exported signed tree heads: every kind of tampering, and
every bad input, refused with a clear message and a non-zero exit."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.audit.checkpoint_cli import Refused, export
from services.audit.cli import app
from services.audit.ledger import Ledger
from services.audit.record import Record
from services.audit.treehead import TreeHead, export_head, sign_head
from shared.runtime.signing import KeySet, Signer
from tests.unit.audit.records import directive_story

runner = CliRunner()
AT = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
SIGNER = Signer.generate("audit-test")


def story() -> list[Record]:
    return directive_story("EXP-7", notices=6) + [Record("identity.users.v1", 0, 0, b"7", None)]


def write_ledger(path: Path, records: list[Record]) -> Ledger:
    path.unlink(missing_ok=True)
    ledger = Ledger(path)
    ledger.append(records)
    return ledger


def sign_and_export(ledger: Ledger, folder: Path, signer: Signer = SIGNER) -> TreeHead:
    size, root = ledger.tree_head()
    head = sign_head(signer, size, root, AT)
    export_head(head, folder)
    (folder / "keys.jwks.json").write_text(KeySet([SIGNER.public()]).to_json())
    return head


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    ledger = write_ledger(path, story()[:5])
    sign_and_export(ledger, tmp_path / "heads")  # an early head, then the rest
    ledger.append(story()[5:])
    sign_and_export(ledger, tmp_path / "heads")
    ledger.close()
    return path


def verify(ledger_file: Path, *extra: str):
    heads = ledger_file.parent / "heads"
    return runner.invoke(
        app,
        ["verify", "--no-kafka", "--ledger", str(ledger_file), "--against", str(heads), *extra],
        env={"COLUMNS": "300"},
    )


def rewrite(ledger_file: Path, records: list[Record]) -> None:
    """The ledger rebuilt wholesale from other records: its chain is intact, only signed heads can tell."""
    write_ledger(ledger_file, records).close()


def test_an_untouched_ledger_matches_every_exported_head(ledger_file: Path) -> None:
    result = verify(ledger_file)
    assert result.exit_code == 0, result.output
    assert "matches (latest exported head)" in result.output and "2 exported signed heads match" in result.output


def test_a_record_altered_and_the_chain_rebuilt_is_caught_by_the_signed_root(ledger_file: Path) -> None:
    records = story()
    records[2] = replace(records[2], value=records[2].value.replace(b"0.21", b"0.01"))
    rewrite(ledger_file, records)
    result = verify(ledger_file)
    assert result.exit_code == 1 and "differs from the signed head" in result.output


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: r[:3] + r[4:],  # removed
        lambda r: r[:3] + [r[4], r[3]] + r[5:],  # reordered
        lambda r: (
            r[:3] + [Record("serving.acks.v1", 0, 99, b"us-east", b'{"type":"CommandApplied"}')] + r[3:]
        ),  # inserted
        lambda r: r[:-1],  # tail dropped
    ],
    ids=["removed", "reordered", "inserted", "tail-dropped"],
)
def test_removed_reordered_inserted_or_dropped_records_fail_verification(ledger_file: Path, tamper) -> None:
    rewrite(ledger_file, tamper(story()))
    result = verify(ledger_file)
    assert result.exit_code == 1, result.output


def test_an_edit_in_place_breaks_the_chain_and_names_the_seq(ledger_file: Path) -> None:
    with sqlite3.connect(ledger_file) as db:
        db.execute("UPDATE entries SET value = replace(value, '0.21', '0.01') WHERE seq = 3")
    result = verify(ledger_file)
    assert result.exit_code == 1 and "seq 3" in result.output


def test_a_head_whose_root_was_edited_is_refused_as_a_bad_signature(ledger_file: Path) -> None:
    path = sorted((ledger_file.parent / "heads").glob("checkpoint-*.json"))[-1]
    document = json.loads(path.read_text())
    document["root"] = "00" * 32
    path.write_text(json.dumps(document))
    result = verify(ledger_file)
    assert result.exit_code == 1 and "bad signature" in result.output


def test_a_head_signed_by_another_key_is_refused(ledger_file: Path, tmp_path: Path) -> None:
    ledger = Ledger(ledger_file)
    other = tmp_path / "other"
    sign_and_export(ledger, other, Signer.generate("mallory"))
    ledger.close()
    result = runner.invoke(
        app,
        ["verify", "--no-kafka", "--ledger", str(ledger_file), "--against", str(other)],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 1 and "unknown key 'mallory'" in result.output


def test_a_truncated_ledger_file_is_a_clear_error(ledger_file: Path) -> None:
    data = ledger_file.read_bytes()
    ledger_file.write_bytes(data[: len(data) // 3])
    result = verify(ledger_file)
    assert result.exit_code in (1, 2) and "ledger" in result.output and "Traceback" not in result.output


def test_a_corrupted_ledger_file_is_a_clear_error(ledger_file: Path) -> None:
    ledger_file.write_bytes(b"\x00" * 4096)
    result = verify(ledger_file)
    assert result.exit_code == 2 and "not an audit ledger" in " ".join(result.output.split())


def test_an_export_folder_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(Refused, match="cannot write"):
        export([], KeySet([SIGNER.public()]), blocker / "heads")


def test_export_writes_heads_of_the_key_and_skips_other_keys(tmp_path: Path) -> None:
    mine, theirs = sign_head(SIGNER, 3, b"\x01" * 32, AT), sign_head(Signer.generate("x"), 4, b"\x02" * 32, AT)
    assert export([mine, theirs], KeySet([SIGNER.public()]), tmp_path / "out") == (1, 1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["checkpoint-000000000003.json", "keys.jwks.json"]
    )


def test_export_refuses_a_forged_head_of_the_key(tmp_path: Path) -> None:
    forged = replace(sign_head(SIGNER, 3, b"\x01" * 32, AT), size=4)
    with pytest.raises(Refused, match="forged head"):
        export([forged], KeySet([SIGNER.public()]), tmp_path / "out")


def test_prove_gives_a_verified_inclusion_proof_under_the_latest_head(ledger_file: Path) -> None:
    heads = ledger_file.parent / "heads"
    result = runner.invoke(app, ["prove", "4", "--ledger", str(ledger_file), "--against", str(heads)])
    assert result.exit_code == 0, result.output
    proof = json.loads(result.output)
    assert proof["verified"] and proof["tree_size"] == 10 and proof["against"].startswith("signed head audit-test")


def test_prove_fails_when_the_record_was_altered_since_the_head(ledger_file: Path) -> None:
    records = story()
    records[3] = replace(records[3], key=b"someone-else")
    rewrite(ledger_file, records)
    heads = ledger_file.parent / "heads"
    result = runner.invoke(app, ["prove", "4", "--ledger", str(ledger_file), "--against", str(heads)])
    assert result.exit_code == 1 and json.loads(result.output)["verified"] is False


def test_prove_an_unknown_seq_is_a_clear_error(ledger_file: Path) -> None:
    result = runner.invoke(app, ["prove", "999", "--ledger", str(ledger_file)])
    assert result.exit_code == 2 and "no entry 999" in result.output


def test_the_later_head_is_consistent_with_the_earlier(ledger_file: Path) -> None:
    old, new = sorted((ledger_file.parent / "heads").glob("checkpoint-*.json"))
    result = runner.invoke(app, ["consistency", str(old), str(new), "--ledger", str(ledger_file)])
    assert result.exit_code == 0, result.output
    assert "yes" in result.output


def test_heads_over_a_rewritten_history_are_not_consistent(ledger_file: Path, tmp_path: Path) -> None:
    old = sorted((ledger_file.parent / "heads").glob("checkpoint-*.json"))[0]
    records = story()
    records[1] = replace(records[1], key=b"rewritten")
    ledger = write_ledger(tmp_path / "forged.sqlite", records)
    forged_dir = tmp_path / "forged-heads"
    new = export_head(sign_head(SIGNER, *ledger.tree_head(), AT), forged_dir)
    ledger.close()
    result = runner.invoke(
        app, ["consistency", str(old), str(new), "--ledger", str(tmp_path / "forged.sqlite")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1 and "does not extend" in result.output
