"""`countermand registry import --dry-run`: exit codes, the error report and its CSV; nothing produced."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from cli.main import app

GOOD = "1,a@example.com,US,US,consumer,,,,,"


def run(*args: str):
    # No Kafka is reachable at this address: a dry run must not need it.
    return CliRunner().invoke(app, ["registry", "import", *args, "--dry-run", "--bootstrap", "127.0.0.1:1"])


def test_a_clean_file_exits_0_and_says_what_it_would_produce(files) -> None:
    result = run(str(files.csv(GOOD, "2,,,,,,,,,true")))
    assert result.exit_code == 0, result.output
    assert "would produce 1 upserts, 1 deletions" in result.output


def test_refused_rows_exit_1_and_are_written_to_the_errors_file(files, tmp_path) -> None:
    report = tmp_path / "errors.csv"
    result = run(str(files.csv(GOOD, "2,b@example.com,US,XX,consumer,,,,,")), "--errors", str(report))
    assert result.exit_code == 1, result.output
    assert "1 refused" in result.output
    with report.open() as file:
        assert list(csv.DictReader(file)) == [
            {"line": "2", "field": "residence", "value": "XX", "why": "not an ISO 3166-1 alpha-2 country code"}
        ]


def test_a_file_error_exits_2(tmp_path) -> None:
    (tmp_path / "users.csv").write_bytes(b"")
    result = run(str(tmp_path / "users.csv"))
    assert result.exit_code == 2
    assert "empty (0 bytes)" in result.output and "nothing was imported" in result.output
