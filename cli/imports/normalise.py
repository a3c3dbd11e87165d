"""Columns of any type the readers produce (text, numbers, booleans, lists, all-null) made uniform, vectorised."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cli.imports.problems import ImportFileError

LIST_SEPARATORS = "[;|]"
TRUE_WORDS = ["true", "t", "yes", "y", "1"]
FALSE_WORDS = ["false", "f", "no", "n", "0", ""]
ID_PATTERN = r"^[0-9]{1,10}$"


def as_text(values: pa.Array | pa.ChunkedArray, field: str) -> pa.Array:
    """Trimmed text; null where the value is absent or blank."""
    values = _single(values)
    kind = values.type
    if pa.types.is_null(kind):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_boolean(kind):
        text = pc.if_else(values, "true", "false")
    elif (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_dictionary(kind)
    ):
        text = values.cast(pa.string())
    else:
        raise ImportFileError(f"field {field}: the column holds {kind}, expected text")
    trimmed = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def as_list(values: pa.Array | pa.ChunkedArray, field: str) -> pa.ListArray:
    """A list of trimmed text per row; null where absent or blank. Text is split on ';' or '|' (empty parts
    dropped); a list given as a list (JSON, Parquet) is kept as it is, an empty one included."""
    values = _single(values)
    kind = values.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        lists = values.cast(pa.list_(pa.string()))
        return _with_items(lists, pc.utf8_trim_whitespace(pc.list_flatten(lists)), keep_empty=True)
    text = as_text(values, field)
    parts = pc.split_pattern_regex(text, LIST_SEPARATORS)
    return _with_items(parts, pc.utf8_trim_whitespace(pc.list_flatten(parts)), keep_empty=False)


def as_flag(values: pa.Array | pa.ChunkedArray, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(flag, bad) per row: true/false words (absent = false); bad where the value is neither."""
    text = pc.utf8_lower(as_text(values, field).fill_null(""))
    truth = pc.is_in(text, pa.array(TRUE_WORDS)).to_numpy(zero_copy_only=False)
    bad = ~(truth | pc.is_in(text, pa.array(FALSE_WORDS)).to_numpy(zero_copy_only=False))
    return truth, bad


def as_ids(values: pa.Array | pa.ChunkedArray, field: str, highest: int) -> tuple[np.ndarray, np.ndarray]:
    """(id, ok) per row: whole numbers in 0..highest, given as integers or as decimal text."""
    values = _single(values)
    if pa.types.is_integer(values.type):
        numbers = values.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
        return numbers, (numbers >= 0) & (numbers <= highest)
    text = as_text(values, field)
    digits = pc.match_substring_regex(text, ID_PATTERN).fill_null(False)
    numbers = pc.if_else(digits, text, "0").cast(pa.int64()).to_numpy(zero_copy_only=False)
    ok = digits.to_numpy(zero_copy_only=False) & (numbers <= highest)
    return numbers, ok


def _with_items(lists: pa.ListArray, items: pa.Array, *, keep_empty: bool) -> pa.ListArray:
    """The lists with new (same-length) items; blank items dropped unless keep_empty."""
    if keep_empty:
        return pa.ListArray.from_arrays(_offsets(lists), items, mask=pc.is_null(lists))
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    kept = pc.not_equal(items, "").fill_null(False).to_numpy(zero_copy_only=False)
    counts = np.bincount(parents[kept], minlength=len(lists))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), items.filter(pa.array(kept)), mask=pc.is_null(lists))


def _offsets(lists: pa.ListArray) -> pa.Array:
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    return pa.array(np.concatenate(([0], np.cumsum(lengths))).astype(np.int32))


def _single(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
