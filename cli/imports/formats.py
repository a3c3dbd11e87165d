"""Which format a file is, from its extension, and a check that its first bytes agree."""

from __future__ import annotations

import codecs
from pathlib import Path

from cli.imports.problems import ImportFileError

EXTENSIONS = {".csv": "CSV", ".jsonl": "JSON Lines", ".ndjson": "JSON Lines", ".parquet": "Parquet"}
PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 * 1024


def format_of(path: Path) -> str:
    """The format the file's extension names, after checking the file exists, is not empty and agrees."""
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise ImportFileError(f"{path}: unknown extension {path.suffix!r}; expected one of {', '.join(EXTENSIONS)}")
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError(f"{path}: the file is empty (0 bytes); expected {kind}")
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
        file.seek(max(size - len(PARQUET_MAGIC), 0))
        tail = file.read()
    _check(path, kind, head, tail)
    return kind


def _check(path: Path, kind: str, head: bytes, tail: bytes) -> None:
    is_parquet = head.startswith(PARQUET_MAGIC) and tail == PARQUET_MAGIC
    if kind == "Parquet":
        if not is_parquet:
            raise ImportFileError(
                f"{path}: not a Parquet file (no PAR1 magic number at its start and end)"
                f"{_looks_like(head)}; expected Parquet"
            )
        return
    if is_parquet or head.startswith(PARQUET_MAGIC):
        raise ImportFileError(f"{path}: this is a Parquet file, not {kind}; rename it to .parquet")
    if b"\x00" in head or not _utf8(head):
        raise ImportFileError(f"{path}: binary data, not UTF-8 text; expected {kind}")
    if kind == "JSON Lines" and not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        raise ImportFileError(
            f"{path}: the first line is not a JSON object; expected JSON Lines (one {{...}} object per line)"
        )


def _utf8(head: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut character at the end is fine
    except UnicodeDecodeError:
        return False
    return True


def _looks_like(head: bytes) -> str:
    if b"\x00" in head or not _utf8(head):
        return ""
    text = head.lstrip()
    return " (it looks like JSON text)" if text.startswith((b"{", b"[")) else " (it looks like text, e.g. CSV)"
