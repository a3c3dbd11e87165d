"""The notifier's view of who each directive covers: replaced by a confirmed revision, changed by deltas,
dropped by a lift, and kept across a restart."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from services.notifier.coverage import Coverage
from services.notifier.coverage_store import CoverageStore
from services.notifier.delivery_ledger import open_database


def test_a_revision_replaces_the_directives_sets_and_an_older_one_changes_nothing() -> None:
    coverage = Coverage()
    coverage.enforced("A", 2, {"fable-5": BitMap([1, 2])})
    coverage.enforced("A", 1, {"fable-5": BitMap([9])})
    assert coverage.covering(1, "fable-5") == [("A", 2)] and coverage.covering(9, "fable-5") == []


def test_deltas_apply_removals_first_and_only_to_the_revision_in_force() -> None:
    coverage = Coverage()
    coverage.enforced("A", 1, {"fable-5": BitMap([1, 2])})
    coverage.delta("A", 1, "fable-5", BitMap([2, 3]), BitMap([1, 2]))
    coverage.delta("A", 0, "fable-5", BitMap([7]), BitMap())
    assert [u for u in range(10) if coverage.covering(u, "fable-5")] == [2, 3]


def test_restored_access_excludes_users_another_directive_still_covers() -> None:
    coverage = Coverage()
    coverage.enforced("A", 1, {"fable-5": BitMap([1, 2])})
    coverage.enforced("B", 1, {"fable-5": BitMap([2]), "mythos-5": BitMap([1])})
    assert list(coverage.elsewhere("A", "fable-5")) == [2]
    coverage.lifted("B")
    assert list(coverage.elsewhere("A", "fable-5")) == []


def test_coverage_and_grant_positions_survive_a_restart(tmp_path: Path) -> None:
    store = CoverageStore(open_database(tmp_path / "c.db"))
    store.enforced("A", 3, {"fable-5": BitMap([1])})
    store.delta("A", 3, "fable-5", BitMap([4]), BitMap())
    store.enforced("B", 1, {"fable-5": BitMap([5])})
    store.lifted("B")
    store.check_grants(0, 10)
    store.check_grants(0, 7)  # positions never go back
    again = CoverageStore(open_database(tmp_path / "c.db"))
    assert again.coverage.covering(4, "fable-5") == [("A", 3)] and again.coverage.covering(5, "fable-5") == []
    assert again.grants_checked() == {0: 10}
