"""Snapshots of the user view: an exact round trip, an atomic replace, and unusable files refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from services.impact import view_snapshot as snapshots
from services.impact.affected import assess
from tests.unit.impact.population_builder import population, scope, user

SELECTORS = [
    {"kind": "foreign_national", "home_country": "US"},
    {"kind": "organisation", "any_of": ["org-2"]},
    {"kind": "entitlement", "any_of": ["mythos-5"]},
    {"kind": "residence", "any_of": ["DE"]},
]


def view():
    people = population(
        user(1, ["US", "IE", "FR", "DE", "CN"], "US", "employee", "org-1", ("fable-5",)),
        user(4, None, None, "consumer", "org-2", ("mythos-5",)),
        user(9, ["DE"]),
    )
    people.delete([9])
    return people


def test_a_written_snapshot_loads_back_to_the_same_view_and_offsets(tmp_path: Path) -> None:
    path = snapshots.snapshot_path(tmp_path)
    people = view()
    snapshots.write(path, people.columns(), {0: 12, 5: 3})
    loaded = snapshots.load(path)
    assert loaded.offsets == {0: 12, 5: 3} and loaded.population.users == people.users == 2
    for selector in SELECTORS:
        assert assess(loaded.population, scope(selector)).by_model == assess(people, scope(selector)).by_model
    original, again = people.columns(), loaded.population.columns()
    assert np.array_equal(original.nationalities, again.nationalities) and again.organisations == original.organisations
    loaded.population.upsert([user(20, ["FR"], organisation="org-3")])  # the loaded view keeps growing
    assert loaded.population.users == 3


def test_writing_replaces_the_previous_snapshot_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = snapshots.snapshot_path(tmp_path)
    snapshots.write(path, view().columns(), {0: 1})
    snapshots.write(path, view().columns(), {0: 2})
    assert snapshots.load(path).offsets == {0: 2}
    assert [p.name for p in path.parent.iterdir()] == [snapshots.FILE_NAME]


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "one byte changed"])
def test_an_unusable_snapshot_is_refused_with_the_reason(tmp_path: Path, damage: str) -> None:
    path = snapshots.snapshot_path(tmp_path)
    if damage != "missing":
        snapshots.write(path, view().columns(), {0: 1})
        data = bytearray(path.read_bytes())
        if damage == "one byte changed":
            with zipfile.ZipFile(path) as archive:
                column = archive.getinfo("residence.npy")
            local = column.header_offset  # the member's bytes follow its local header, name and extra field
            begins = local + 30 + int.from_bytes(data[local + 26 : local + 28], "little")
            begins += int.from_bytes(data[local + 28 : local + 30], "little")
            data[begins + column.file_size - 1] ^= 0xFF  # the column's last byte
        path.write_bytes({"garbage": b"not a snapshot", "truncated": data[: len(data) // 2]}.get(damage, bytes(data)))
    with pytest.raises(snapshots.SnapshotUnusable, match=str(path)) as refused:
        snapshots.load(path)
    assert damage != "one byte changed" or "CRC-32 for file 'residence.npy'" in str(refused.value)


def test_a_snapshot_whose_members_were_compressed_loads_to_the_same_view(tmp_path: Path) -> None:
    path = snapshots.snapshot_path(tmp_path)
    snapshots.write(path, view().columns(), {0: 7})
    repacked = tmp_path / "repacked.npz"
    with zipfile.ZipFile(path) as stored, zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED) as out:
        for name in stored.namelist():
            out.writestr(name, stored.read(name))
    loaded, again = snapshots.load(path), snapshots.load(repacked)
    assert again.offsets == loaded.offsets == {0: 7}
    for selector in SELECTORS:
        assert assess(again.population, scope(selector)).by_model == assess(loaded.population, scope(selector)).by_model
