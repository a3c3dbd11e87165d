"""Small import files written on the fly, in each format."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HEADER = "user_id,email,nationalities,residence,account_type,organisation,entitlements,locale,stateless,deleted"


class Files:
    """Writes import files into a test's temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def csv(self, *rows: str, header: str = HEADER, name: str = "users.csv") -> Path:
        path = self.folder / name
        path.write_text("\n".join((header, *rows)) + "\n")
        return path

    def jsonl(self, *rows: dict | str, name: str = "users.jsonl") -> Path:
        path = self.folder / name
        path.write_bytes(b"\n".join(r.encode() if isinstance(r, str) else orjson.dumps(r) for r in rows) + b"\n")
        return path

    def parquet(self, columns: dict, name: str = "users.parquet") -> Path:
        path = self.folder / name
        pq.write_table(pa.table(columns), path)
        return path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)
