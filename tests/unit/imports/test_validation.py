"""Validation of import rows on Arrow columns: each bad value refused with line, field, value and why; the
good rows kept."""

from __future__ import annotations

import pytest

from cli.imports.columns import parse_mapping
from cli.imports.problems import ImportFileError, RowError
from cli.imports.reader import read
from cli.imports.validation import Checked, check

GOOD = "1,a@example.com,US;IE,DE,consumer,org-1,fable-5|mythos-5,de,,"


def checked(path, *maps: str) -> Checked:
    return check(read(path, parse_mapping(maps)))


def test_a_good_row_becomes_a_canonical_upsert(files) -> None:
    result = checked(files.csv(GOOD, "2,b@example.com, us ,,Employee,,,,false,no"))
    assert result.errors == []
    assert result.upserts.to_pylist() == [
        {
            "user_id": 1,
            "email": "a@example.com",
            "nationalities": ["US", "IE"],
            "residence": "DE",
            "account_type": "consumer",
            "organisation": "org-1",
            "entitlements": ["fable-5", "mythos-5"],
            "locale": "de",
        },
        {
            "user_id": 2,
            "email": "b@example.com",
            "nationalities": ["US"],
            "residence": None,
            "account_type": "employee",
            "organisation": None,
            "entitlements": [],
            "locale": "en",
        },
    ]


def test_every_iso_country_is_accepted_including_those_the_synthetic_table_lacked(files) -> None:
    result = checked(
        files.csv("1,a@example.com,BY;CU;HT;KP,MM,consumer,,,,,", "2,b@example.com,SY|VE,VE,consumer,,,,,")
    )
    assert result.errors == []
    assert result.upserts.column("nationalities").to_pylist() == [["BY", "CU", "HT", "KP"], ["SY", "VE"]]


def test_a_bad_country_refuses_only_its_row(files) -> None:
    result = checked(files.csv(GOOD, "2,b@example.com,US;XX,DE,consumer,,,,,", "3,c@example.com,US,ZZ,consumer,,,,,"))
    assert result.errors == [
        RowError(2, "nationalities", "XX", "not an ISO 3166-1 alpha-2 country code"),
        RowError(3, "residence", "ZZ", "not an ISO 3166-1 alpha-2 country code"),
    ]
    assert result.upserts.column("user_id").to_pylist() == [1]


def test_an_unknown_account_type_is_refused(files) -> None:
    [error] = checked(files.csv(GOOD, "2,b@example.com,US,US,wizard,,,,,")).errors
    assert (error.line, error.field, error.value) == (2, "account_type", "wizard")
    assert "consumer, enterprise_member, employee" in error.why


def test_a_duplicate_id_is_refused_naming_the_first_line(files) -> None:
    result = checked(files.csv("5,a@example.com,US,US,consumer,,,,,", GOOD, "5,b@example.com,US,US,consumer,,,,,"))
    assert result.errors == [RowError(3, "user_id", "5", "duplicate of line 1")]
    assert sorted(result.upserts.column("user_id").to_pylist()) == [1, 5]


@pytest.mark.parametrize("value", ["-1", "4294967296", "12a", ""])
def test_an_id_outside_the_contract_is_refused(files, value: str) -> None:
    [error] = checked(files.csv(f"{value},a@example.com,US,US,consumer,,,,,")).errors
    assert (error.field, error.value) == ("user_id", value)


def test_a_missing_required_column_is_a_file_error_naming_it(files) -> None:
    path = files.csv("1,a@example.com,US,consumer", header="user_id,email,nationalities,account_type")
    with pytest.raises(ImportFileError, match=r"missing required column\(s\): residence"):
        checked(path)


def test_a_renamed_column_is_read_through_the_mapping(files) -> None:
    path = files.csv("7,a@example.com,US,US,consumer", header="id,mail,nationalities,residence,account_type")
    with pytest.raises(ImportFileError, match=r"user_id \(column 'uid'\)"):
        checked(path, "user_id=uid", "email=mail")
    assert checked(path, "user_id=id", "email=mail").upserts.column("user_id").to_pylist() == [7]


def test_a_csv_line_with_the_wrong_field_count_is_refused_and_the_rest_kept(files) -> None:
    result = checked(files.csv(GOOD, "2,b@example.com,US", "3,c@example.com,US,US,consumer,,,,,"))
    [error] = result.errors
    assert (error.line, error.field, error.value) == (2, "line", "2,b@example.com,US")
    assert "expected 10 fields, found 3" in error.why
    assert result.upserts.column("user_id").to_pylist() == [1, 3]
    assert result.upsert_lines.tolist() == [1, 3]


def test_an_invalid_json_line_is_refused_and_the_rest_kept(files) -> None:
    row = {
        "user_id": 1,
        "email": "a@example.com",
        "nationalities": ["US"],
        "residence": "US",
        "account_type": "consumer",
    }
    result = checked(files.jsonl(row, '{"user_id": 2, "email": ', {**row, "user_id": 3}))
    [error] = result.errors
    assert (error.line, error.field) == (2, "line") and error.why.startswith("not JSON")
    assert result.upserts.column("user_id").to_pylist() == [1, 3]


def test_unknown_nationality_is_null_and_stateless_is_an_empty_list(files) -> None:
    result = checked(files.csv("1,a@example.com,,US,consumer,,,,,", "2,b@example.com,,US,consumer,,,,true,"))
    assert result.errors == []
    assert result.upserts.column("nationalities").to_pylist() == [None, []]


def test_stateless_with_nationalities_is_refused(files) -> None:
    [error] = checked(files.csv("1,a@example.com,US,US,consumer,,,,true,")).errors
    assert error.field == "stateless"


def test_an_empty_list_is_refused_unless_the_row_says_stateless(files) -> None:
    row = {"user_id": 1, "email": "a@example.com", "nationalities": [], "residence": "US", "account_type": "consumer"}
    result = checked(files.jsonl(row, {**row, "user_id": 2, "stateless": True}))
    assert [(e.line, e.field) for e in result.errors] == [(1, "nationalities")]
    assert result.upserts.column("nationalities").to_pylist() == [[]]


def test_a_deleted_row_needs_only_its_id(files) -> None:
    result = checked(files.csv(GOOD, "9,,,,,,,,,true"))
    assert result.errors == []
    assert result.deletions.tolist() == [9]
    assert result.upserts.column("user_id").to_pylist() == [1]


def test_model_names_follow_the_contract(files) -> None:
    [error] = checked(files.csv("1,a@example.com,US,US,consumer,,fable-5;Mythos 5,,,")).errors
    assert (error.field, error.value) == ("entitlements", "Mythos 5")


def test_parquet_lists_and_row_indexes(files) -> None:
    path = files.parquet(
        {
            "user_id": [10, 11],
            "email": ["a@example.com", "b@example.com"],
            "nationalities": [["US"], ["QQ"]],
            "residence": ["US", None],
            "account_type": ["consumer", "employee"],
        }
    )
    result = checked(path)
    assert [(e.line, e.field, e.value) for e in result.errors] == [(1, "nationalities", "QQ")]
    assert result.upserts.column("user_id").to_pylist() == [10]
