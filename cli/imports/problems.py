"""What can be wrong with an import file: one row (the row is refused) or the whole file (nothing imported)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, wrong format, a required column missing)."""


@dataclass(frozen=True, order=True)
class RowError:
    """One refused value: its 1-based data line (Parquet: 0-based row index), field, value and why."""

    line: int
    field: str
    value: str
    why: str


def row_errors(lines: Sequence[int], field: str, values: Sequence[object], why: str) -> list[RowError]:
    """One RowError per (line, value), all with the same field and reason."""
    return [RowError(int(line), field, _shown(value), why) for line, value in zip(lines, values, strict=True)]


def write_errors(path: Path, errors: Iterable[RowError]) -> int:
    """Write every error to a CSV file (line, field, value, why); returns how many were written."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "field", "value", "why"])
        for error in errors:
            writer.writerow([error.line, error.field, error.value, error.why])
            count += 1
    return count


def _shown(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 200 else text[:197] + "..."
