"""JSON Lines the slow way, one line at a time: only for files Arrow's reader refuses as a whole (a malformed
line, or a field whose JSON type changes between lines), so that every good line is still imported."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from cli.imports.columns import LIST_FIELDS
from cli.imports.problems import RowError

CHUNK_BYTES = 64 * 1024 * 1024
LIST_SEPARATORS = re.compile(r"[;|]")


def count_lines(path: Path) -> int:
    """Lines of the file that hold something (as Arrow counts rows: blank lines skipped)."""
    count = 0
    with path.open("rb") as file:
        for line in file:
            count += bool(line.strip())
    return count


def read_slowly(path: Path, mapping: Mapping[str, str]) -> tuple[pa.Table, np.ndarray, list[RowError]]:
    """Every line that is a JSON object, as text (or list of text) columns; an error for each other line."""
    objects, lines, errors = [], [], []
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            if not raw.strip():
                continue
            parsed = _parse(raw, number, errors)
            if parsed is not None:
                objects.append(parsed)
                lines.append(number)
    columns = {column for parsed in objects for column in parsed}
    table = pa.table(
        {
            column: _column(field, [o.get(column) for o in objects])
            for field, column in mapping.items()
            if column in columns
        }
    )
    return table, np.array(lines, dtype=np.int64), errors


def _parse(raw: bytes, number: int, errors: list[RowError]) -> dict | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        errors.append(RowError(number, "line", raw.decode("utf-8", "replace").strip()[:200], f"not JSON: {exc}"))
        return None
    if not isinstance(parsed, dict):
        errors.append(RowError(number, "line", raw.decode("utf-8", "replace").strip()[:200], "not a JSON object"))
        return None
    return parsed


def _column(field: str, values: list) -> pa.Array:
    if field in LIST_FIELDS:
        return pa.array([_texts(value) for value in values], pa.list_(pa.string()))
    return pa.array([_text(value) for value in values], pa.string())


def _texts(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [_text(item) or "" for item in value]
    parts = [part.strip() for part in LIST_SEPARATORS.split(_text(value) or "")]
    return [part for part in parts if part] or None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()
