"""Read an import file into an Arrow table whose columns are named by field, with each row's line number.

Arrow's multithreaded C++ readers do the work; a malformed line (a CSV row with the wrong number of fields,
a JSON line that does not parse) is reported as a RowError and the other rows are kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from cli.imports import jsonlines
from cli.imports.columns import missing_required
from cli.imports.formats import format_of
from cli.imports.problems import ImportFileError, RowError

BLOCK_BYTES = 16 * 1024 * 1024


@dataclass
class RawRows:
    """The rows that parsed: one column per mapped field present in the file, and their line numbers."""

    table: pa.Table
    lines: np.ndarray
    errors: list[RowError] = field(default_factory=list)
    kind: str = ""


def read(path: Path, mapping: Mapping[str, str]) -> RawRows:
    """Read the file in the format its extension names (ImportFileError when it cannot be read at all)."""
    kind = format_of(path)
    readers = {"CSV": _read_csv, "JSON Lines": _read_jsonl, "Parquet": _read_parquet}
    try:
        rows = readers[kind](path, mapping)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ImportFileError(f"{path}: cannot be read as {kind}: {exc}") from exc
    rows.kind = kind
    return rows


def by_field(table: pa.Table, mapping: Mapping[str, str], path: Path) -> pa.Table:
    """The mapped columns of the table, renamed to their fields (ImportFileError naming a missing one)."""
    missing = missing_required(mapping, table.column_names)
    if missing:
        raise ImportFileError(
            f"{path}: missing required column(s): {', '.join(missing)}; "
            f"the file has: {', '.join(table.column_names) or 'no columns'}"
        )
    present = {name: column for name, column in mapping.items() if column in table.column_names}
    return pa.table({name: table.column(column) for name, column in present.items()})


# ---- CSV -------------------------------------------------------------------------------------------


def _read_csv(path: Path, mapping: Mapping[str, str]) -> RawRows:
    header = _csv_header(path)
    by_field(pa.table({name: pa.array([], pa.string()) for name in header}), mapping, path)
    wanted = [column for column in mapping.values() if column in header]
    table, bad = _csv_table(path, wanted, threads=True)
    if bad:  # Arrow numbers the skipped rows only when reading on one thread: rare, so read again
        table, bad = _csv_table(path, wanted, threads=False)
    lines = _complement(bad, table.num_rows)
    errors = [RowError(line, "line", text, f"expected {want} fields, found {got}") for line, want, got, text in bad]
    return RawRows(by_field(table, mapping, path), lines, errors)


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        try:
            header = next(csv.reader(io.StringIO(file.readline())), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ImportFileError(f"{path}: the header line is not CSV: {exc}") from exc
    return [name.strip() for name in header]


def _csv_table(path: Path, columns: list[str], *, threads: bool) -> tuple[pa.Table, list[tuple]]:
    bad: list[tuple] = []

    def skip(row: pa_csv.InvalidRow) -> str:
        number = -1 if row.number is None else row.number - 1  # Arrow counts the header as row 1
        bad.append((number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    table = pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(use_threads=threads, block_size=BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=skip),
        convert_options=pa_csv.ConvertOptions(
            include_columns=columns,
            column_types={name: pa.string() for name in columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table, sorted(bad)


def _complement(bad: list[tuple], good: int) -> np.ndarray:
    """Line numbers (1-based) of the good rows, given the lines of the skipped ones."""
    if not bad:
        return np.arange(1, good + 1, dtype=np.int64)
    every = np.arange(1, good + len(bad) + 1, dtype=np.int64)
    return np.setdiff1d(every, np.array([line for line, *_ in bad], dtype=np.int64), assume_unique=True)


# ---- JSON Lines --------------------------------------------------------------------------------------


def _read_jsonl(path: Path, mapping: Mapping[str, str]) -> RawRows:
    try:
        table = pa_json.read_json(path, read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES))
    except pa.ArrowInvalid:  # a malformed line or a value of another type: parse line by line instead
        table = None
    if table is not None and jsonlines.count_lines(path) == table.num_rows:
        return RawRows(by_field(table, mapping, path), np.arange(1, table.num_rows + 1, dtype=np.int64))
    table, lines, errors = jsonlines.read_slowly(path, mapping)
    return RawRows(by_field(table, mapping, path), lines, errors)


# ---- Parquet -------------------------------------------------------------------------------------------


def _read_parquet(path: Path, mapping: Mapping[str, str]) -> RawRows:
    names = pq.read_schema(path).names
    by_field(pa.table({name: pa.array([], pa.string()) for name in names}), mapping, path)
    table = pq.read_table(path, columns=[column for column in mapping.values() if column in names])
    return RawRows(by_field(table, mapping, path), np.arange(table.num_rows, dtype=np.int64))
