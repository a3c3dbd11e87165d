"""Whole-file problems: nothing is imported and the message names the file and what was expected."""

from __future__ import annotations

import pytest

from cli.imports.columns import parse_mapping
from cli.imports.problems import ImportFileError
from cli.imports.reader import read


def refused(path) -> str:
    with pytest.raises(ImportFileError) as caught:
        read(path, parse_mapping([]))
    assert str(path) in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("name", ["users.csv", "users.jsonl", "users.ndjson", "users.parquet"])
def test_a_zero_byte_file_is_refused(tmp_path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    assert "empty (0 bytes)" in refused(tmp_path / name)


def test_a_csv_named_parquet_is_refused(files) -> None:
    path = files.csv("1,a@example.com,US,US,consumer,,,,,", name="users.parquet")
    assert "not a Parquet file" in refused(path) and "CSV" in refused(path)


def test_a_parquet_named_csv_is_refused(files) -> None:
    parquet = files.parquet({"user_id": [1]})
    assert "Parquet file, not CSV" in refused(parquet.rename(parquet.with_suffix(".csv")))


def test_binary_junk_named_jsonl_is_refused(tmp_path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_bytes(bytes(range(256)) * 4)
    assert "binary data, not UTF-8 text; expected JSON Lines" in refused(path)


def test_a_csv_named_jsonl_is_refused(files) -> None:
    path = files.csv("1,a@example.com,US,US,consumer,,,,,", name="users.jsonl")
    assert "not a JSON object" in refused(path)


def test_an_unknown_extension_is_refused(tmp_path) -> None:
    (tmp_path / "users.xlsx").write_bytes(b"PK")
    assert "unknown extension" in refused(tmp_path / "users.xlsx")


def test_a_mapping_to_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="'userid' is not a field"):
        parse_mapping(["userid=id"])
