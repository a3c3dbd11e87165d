"""`countermand audit keygen`: a key the audit can sign with, never overwritten, and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from services.audit.cli import app
from shared.runtime.signing import KeySet, Signer

runner = CliRunner()


def test_keygen_writes_a_private_key_only_its_owner_reads_and_the_matching_public_set(tmp_path: Path) -> None:
    done = runner.invoke(app, ["keygen", str(tmp_path / "keys"), "--key-id", "audit-7"])
    assert done.exit_code == 0, done.output
    private = tmp_path / "keys" / "audit.pem"
    assert os.stat(private).st_mode & 0o077 == 0
    signer = Signer.from_pem("audit-7", private)
    keys = KeySet.from_file(tmp_path / "keys" / "audit.jwks.json")
    assert keys.get("audit-7").public_key.public_bytes_raw() == signer.private_key.public_key().public_bytes_raw()


def test_keygen_never_overwrites_a_key_and_if_missing_keeps_it(tmp_path: Path) -> None:
    assert runner.invoke(app, ["keygen", str(tmp_path)]).exit_code == 0
    before = (tmp_path / "audit.pem").read_bytes()
    again = runner.invoke(app, ["keygen", str(tmp_path)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    assert runner.invoke(app, ["keygen", str(tmp_path), "--if-missing"]).exit_code == 0
    assert (tmp_path / "audit.pem").read_bytes() == before


def test_keygen_into_a_folder_it_cannot_write_is_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    done = runner.invoke(app, ["keygen", str(blocked / "keys")])
    assert done.exit_code == 2 and "cannot write the key" in done.output


def test_an_error_naming_a_long_path_stays_one_line(tmp_path: Path) -> None:
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    assert runner.invoke(app, ["keygen", str(folder)]).exit_code == 0
    again = runner.invoke(app, ["keygen", str(folder)])
    assert again.exit_code == 2
    assert again.output.strip() == f"error: {folder / 'audit.pem'} exists; refusing to overwrite a signing key"
