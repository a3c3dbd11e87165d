"""Active directives: idempotent revisions, lift set algebra, incremental deltas, digests."""

from __future__ import annotations

import numpy as np
from pyroaring import BitMap

from services.impact.affected import AffectedSet, assess
from services.impact.directives import Directives
from shared.contracts.bitmaps import set_digest
from tests.unit.impact.population_builder import population, scope, user

FOREIGN_TO_US = {"kind": "foreign_national", "home_country": "US"}


def test_a_revision_already_assessed_or_older_is_recognised() -> None:
    book = Directives()
    book.activate("D1", 2, scope(FOREIGN_TO_US), {"fable-5": BitMap([1])})
    assert book.is_assessed("D1", 2) and book.is_assessed("D1", 1)
    assert not book.is_assessed("D1", 3) and not book.is_assessed("D2", 1)


def test_lift_restores_only_pairs_no_other_active_directive_covers() -> None:
    book = Directives()
    book.activate(
        "A",
        1,
        scope(FOREIGN_TO_US, ("fable-5", "mythos-5")),
        {"fable-5": BitMap([1, 2, 3]), "mythos-5": BitMap([1, 2, 3])},
    )
    book.activate("B", 1, scope(FOREIGN_TO_US, ("fable-5",)), {"fable-5": BitMap([2])})
    book.activate(
        "C", 1, scope(FOREIGN_TO_US, ("mythos-5", "nova-1")), {"mythos-5": BitMap([3]), "nova-1": BitMap([1])}
    )
    restored = book.restored("A")
    assert restored == {"fable-5": BitMap([1, 3]), "mythos-5": BitMap([1, 2])}
    book.lift("A")
    assert set(book.active) == {"B", "C"}
    assert book.lift("A") is None


def test_lift_after_the_other_directive_is_lifted_restores_everything() -> None:
    book = Directives()
    book.activate("A", 1, scope(FOREIGN_TO_US), {"fable-5": BitMap([1, 2])})
    book.activate("B", 1, scope(FOREIGN_TO_US), {"fable-5": BitMap([2])})
    book.lift("B")
    assert book.restored("A") == {"fable-5": BitMap([1, 2])}


def test_digest_is_the_same_for_the_same_set_whatever_the_insertion_order() -> None:
    ids = [5, 2**32 - 1, 0, 70000, 3]
    forwards, backwards = BitMap(), BitMap()
    for i in ids:
        forwards.add(i)
    for i in reversed(ids):
        backwards.add(i)
    assert set_digest(forwards) == set_digest(backwards) == set_digest(BitMap(sorted(ids)))
    one = AffectedSet(by_model={"b": BitMap(ids), "a": BitMap([1])})
    other = AffectedSet(by_model={"a": BitMap([1]), "b": BitMap(list(reversed(ids)))})
    assert one.digest == other.digest
    assert one.digest != AffectedSet(by_model={"a": BitMap([1]), "b": BitMap([5])}).digest


def test_a_registry_change_yields_a_delta_per_model_with_increasing_seq() -> None:
    view = population(user(1, ["FR"]), user(2, ["US"]))
    book = Directives()
    directive_scope = scope(FOREIGN_TO_US, ("fable-5", "mythos-5"))
    book.activate("A", 1, directive_scope, assess(view, directive_scope).by_model)
    view.upsert([user(2, ["IE"]), user(1, ["US"]), user(9, None)])
    deltas = book.deltas(view, np.array([2, 1, 9]))
    assert [(d.model, d.seq, set(d.added), set(d.removed)) for d in deltas] == [
        ("fable-5", 1, {2, 9}, {1}),
        ("mythos-5", 2, {2, 9}, {1}),
    ]
    assert book.active["A"].sets["fable-5"] == assess(view, directive_scope).by_model["fable-5"]
    assert book.deltas(view, np.array([1, 2, 9])) == []


def test_a_deleted_user_leaves_every_active_set() -> None:
    view = population(user(1, ["FR"]), user(2, ["FR"]))
    book = Directives()
    book.activate("A", 1, scope(FOREIGN_TO_US), {"fable-5": BitMap([1, 2])})
    view.delete([2])
    (delta,) = book.deltas(view, np.array([2]))
    assert set(delta.removed) == {2} and not delta.added and set(book.active["A"].sets["fable-5"]) == {1}
    assert delta.model_digest == set_digest(BitMap([1]))


def test_a_change_larger_than_a_delta_is_split_into_consecutive_deltas_that_fit(monkeypatch) -> None:
    from services.impact import directives as module

    monkeypatch.setattr(module, "DELTA_IDS", 2)
    view = population(*(user(i, ["FR"]) for i in range(1, 6)), *(user(i, ["US"]) for i in range(6, 9)))
    book = Directives()
    directive_scope = scope(FOREIGN_TO_US)
    book.activate("A", 1, directive_scope, assess(view, directive_scope).by_model)
    before = BitMap(book.active["A"].sets["fable-5"])
    view.upsert([*(user(i, ["US"]) for i in range(1, 6)), *(user(i, ["DE"]) for i in range(6, 9))])
    deltas = book.deltas(view, np.arange(1, 9))
    assert [d.seq for d in deltas] == list(range(1, len(deltas) + 1)) and len(deltas) == 5  # 3 + 2 pieces
    assert all(len(d.added) + len(d.removed) <= 2 for d in deltas)
    replayed = before
    for d in deltas:  # each delta's digest is of its predecessor's set with it applied
        replayed = (replayed - d.removed) | d.added
        assert d.model_digest == set_digest(replayed)
    assert replayed == BitMap(range(6, 9)) == assess(view, directive_scope).by_model["fable-5"]


def test_reevaluating_everyone_equals_the_deltas_of_every_row_and_every_held_id_beyond_the_view() -> None:
    directive_scope = scope(FOREIGN_TO_US, ("fable-5", "mythos-5"))
    view = population(*(user(i, ["FR"] if i % 3 else ["US"]) for i in range(1, 40)))
    held = assess(view, directive_scope).by_model
    held = {m: users | BitMap([70_000, 200_001]) for m, users in held.items()}  # ids the view no longer reaches
    view.upsert([user(3, ["DE"]), user(4, ["US"]), user(41, None)])
    view.delete([5])
    listed, everyone = Directives(), Directives()
    for book in (listed, everyone):
        book.activate("A", 1, directive_scope, held)
    ids = np.concatenate([np.arange(view.size), [70_000, 200_001]])
    expected = listed.deltas(view, ids)
    assert everyone.reevaluated(view) == expected and expected
    assert everyone.active["A"].sets == listed.active["A"].sets == assess(view, directive_scope).by_model
    assert everyone.reevaluated(view) == [] and Directives().reevaluated(view) == []
