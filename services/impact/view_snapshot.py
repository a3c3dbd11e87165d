"""The user view on disk: its columns and the registry offsets they reflect, in one .npz replaced atomically
(written beside its final name and renamed; anything unreadable raises SnapshotUnusable).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from services.impact.user_columns import Columns, Population

FORMAT = 1
FILE_NAME = "view.npz"
_COLUMNS = ("present", "nationalities", "nationality_unknown", "residence", "account_type", "organisation")
_ENTITLED = "entitled:"
_LOCAL_HEADER = 30  # bytes of a zip member's local header before its name and extra field
_NPY_HEADER_MAX = 10_240  # numpy's own limit on a .npy header it reads


class SnapshotUnusable(Exception):
    """The snapshot is missing, corrupt or of another format."""


@dataclass(frozen=True)
class Snapshot:
    """A user view as it was at these registry offsets (partition -> next offset)."""

    population: Population
    offsets: dict[int, int]


def snapshot_path(state_dir: Path) -> Path:
    """Where the impact service keeps its snapshot."""
    return Path(state_dir) / "impact" / FILE_NAME


@dataclass(frozen=True)
class ViewSnapshots:
    """The snapshot file of one impact instance: what build() hands the view follower."""

    path: Path

    def write(self, columns: Columns, offsets: dict[int, int]) -> None:
        write(self.path, columns, offsets)

    def load(self) -> Snapshot:
        return load(self.path)


def write(path: Path, columns: Columns, offsets: dict[int, int]) -> None:
    """Write the view's columns and its offsets to a temporary file, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(columns, name) for name in _COLUMNS}
    arrays |= {_ENTITLED + model: column for model, column in columns.entitled.items()}
    meta = {
        "format": FORMAT,
        "offsets": {str(p): o for p, o in offsets.items()},
        "organisations": sorted(columns.organisations, key=columns.organisations.__getitem__),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as out:
        np.savez(out, **arrays)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    _sync_folder(path.parent)


def load(path: Path) -> Snapshot:
    """The snapshot at `path`; raises SnapshotUnusable naming what is wrong."""
    if not path.exists():
        raise SnapshotUnusable(f"no snapshot at {path}")
    try:
        with path.open("rb") as file:
            stored = _arrays(file)
        meta = json.loads(stored["meta"].tobytes())
        if meta.get("format") != FORMAT:
            raise SnapshotUnusable(f"format {meta.get('format')!r}, expected {FORMAT}")
        columns = _columns(stored, meta["organisations"])
        offsets = {int(p): int(o) for p, o in meta["offsets"].items()}
    except SnapshotUnusable as exc:
        raise SnapshotUnusable(f"{path}: {exc}") from exc
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise SnapshotUnusable(f"{path}: unreadable snapshot ({type(exc).__name__}: {exc})") from exc
    return Snapshot(Population.from_columns(columns), offsets)


def _arrays(file: BinaryIO) -> dict[str, np.ndarray]:
    """Every array of the .npz, each read from the file straight into its own memory and checked against its
    member's CRC-32: a few large reads that release the GIL (np.load copies through 256 KiB pieces, each taking
    the GIL back, which a busy event loop then holds: a 10M-user load on a thread took seconds)."""
    with zipfile.ZipFile(file) as archive:
        members = archive.infolist()
    if any(member.compress_type != zipfile.ZIP_STORED for member in members):
        file.seek(0)
        with np.load(file, allow_pickle=False) as stored:  # compressed members: numpy's own reader
            return {name: stored[name] for name in stored.files}
    return {member.filename.removesuffix(".npy"): _stored_array(file, member) for member in members}


def _stored_array(file: BinaryIO, member: zipfile.ZipInfo) -> np.ndarray:
    file.seek(member.header_offset)
    local = file.read(_LOCAL_HEADER)
    if len(local) < _LOCAL_HEADER or local[:4] != b"PK\x03\x04":
        raise SnapshotUnusable(f"{member.filename}: no zip member at offset {member.header_offset}")
    start = member.header_offset + _LOCAL_HEADER + int.from_bytes(local[26:28], "little")  # + name
    start += int.from_bytes(local[28:30], "little")  # + extra field: the member's bytes begin
    file.seek(start)
    header = io.BytesIO(file.read(min(member.file_size, _NPY_HEADER_MAX)))
    version = np.lib.format.read_magic(header)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(header)
    if dtype.hasobject or header.tell() + int(np.prod(shape)) * dtype.itemsize != member.file_size:
        raise SnapshotUnusable(f"{member.filename}: an array of {dtype} {shape} does not fill its zip member")
    array = np.empty(shape, dtype, order="F" if fortran_order else "C")
    data = memoryview(array.reshape(-1, order="A")).cast("B")  # the array's own memory, in file order
    file.seek(start + header.tell())
    if file.readinto(data) != len(data):
        raise SnapshotUnusable(f"{member.filename}: the file ends inside the member")
    if zlib.crc32(data, zlib.crc32(header.getbuffer()[: header.tell()])) != member.CRC:
        raise SnapshotUnusable(f"Bad CRC-32 for file {member.filename!r} (a damaged file)")
    return array


def _columns(stored: Mapping[str, np.ndarray], organisations: list[str]) -> Columns:
    rows = {name: stored[name] for name in _COLUMNS}
    entitled = {key.removeprefix(_ENTITLED): stored[key] for key in stored if key.startswith(_ENTITLED)}
    sizes = {len(column) for column in (*rows.values(), *entitled.values())}
    if len(sizes) > 1:
        raise SnapshotUnusable(f"columns of different lengths {sorted(sizes)}")
    return Columns(**rows, entitled=entitled, organisations={o: i for i, o in enumerate(organisations)})


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
