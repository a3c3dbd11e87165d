"""The user view on disk: its columns and the registry offsets they reflect, in one .npz replaced atomically
(written beside its final name and renamed; anything unreadable raises SnapshotUnusable).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.impact.user_columns import Columns, Population

FORMAT = 1
FILE_NAME = "view.npz"
_COLUMNS = ("present", "nationalities", "nationality_unknown", "residence", "account_type", "organisation")
_ENTITLED = "entitled:"


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
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(stored["meta"].tobytes())
            if meta.get("format") != FORMAT:
                raise SnapshotUnusable(f"{path}: format {meta.get('format')!r}, expected {FORMAT}")
            columns = _columns(stored, meta["organisations"])
            offsets = {int(p): int(o) for p, o in meta["offsets"].items()}
    except SnapshotUnusable:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise SnapshotUnusable(f"{path}: unreadable snapshot ({type(exc).__name__}: {exc})") from exc
    return Snapshot(Population.from_columns(columns), offsets)


def _columns(stored: np.lib.npyio.NpzFile, organisations: list[str]) -> Columns:
    rows = {name: stored[name] for name in _COLUMNS}
    entitled = {key.removeprefix(_ENTITLED): stored[key] for key in stored.files if key.startswith(_ENTITLED)}
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
