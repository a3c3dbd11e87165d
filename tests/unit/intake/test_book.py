"""The directive book: revision assignment, lift rules, replay and reordering."""

from __future__ import annotations

import pytest

from services.intake.book import CatchUp, DirectiveAlreadyLifted, DirectiveBook, UnknownDirective
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveScope, ForeignNational

SCOPE = DirectiveScope(models=["fable-5"], selector=ForeignNational(home_country="US"))


def issued(directive_id: str, revision: int, title: str = "t") -> DirectiveIssued:
    return DirectiveIssued(producer="intake", directive_id=directive_id, revision=revision, title=title, scope=SCOPE)


def lifted(directive_id: str, revision: int) -> DirectiveLifted:
    return DirectiveLifted(producer="intake", directive_id=directive_id, revision=revision, reason="revoked")


def test_a_new_directive_gets_revision_one() -> None:
    assert DirectiveBook().next_revision("EXP-1") == 1


def test_an_issued_directive_is_amended_at_the_next_revision() -> None:
    book = DirectiveBook()
    book.apply(issued("EXP-1", 1))
    book.apply(issued("EXP-1", 2))
    assert book.next_revision("EXP-1") == 3


def test_a_lifted_directive_is_not_reissued_under_its_id() -> None:
    book = DirectiveBook()
    book.apply(issued("EXP-1", 1))
    book.apply(lifted("EXP-1", 1))
    with pytest.raises(DirectiveAlreadyLifted):
        book.next_revision("EXP-1")


def test_lift_names_the_latest_revision() -> None:
    book = DirectiveBook()
    book.apply(issued("EXP-1", 1))
    book.apply(issued("EXP-1", 2))
    assert book.revision_to_lift("EXP-1") == 2


def test_lifting_an_unknown_directive_is_refused_naming_it() -> None:
    with pytest.raises(UnknownDirective, match="EXP-404"):
        DirectiveBook().revision_to_lift("EXP-404")


def test_lifting_twice_is_refused() -> None:
    book = DirectiveBook()
    book.apply(issued("EXP-1", 1))
    book.apply(lifted("EXP-1", 1))
    with pytest.raises(DirectiveAlreadyLifted):
        book.revision_to_lift("EXP-1")


def test_an_older_revision_arriving_late_is_ignored() -> None:
    book = DirectiveBook()
    book.apply(issued("EXP-1", 2, "second"))
    book.apply(issued("EXP-1", 1, "first"))
    entry = book.get("EXP-1")
    assert (entry.revision, entry.title) == (2, "second")


def test_replayed_events_change_nothing() -> None:
    events = [issued("EXP-1", 1), issued("EXP-1", 2), lifted("EXP-1", 2), issued("EXP-2", 1)]
    once, twice = DirectiveBook(), DirectiveBook()
    for event in events:
        once.apply(event)
    for event in events + events:
        twice.apply(event)
    assert once.entries() == twice.entries()


def test_the_same_events_reordered_give_the_same_book() -> None:
    events = [issued("EXP-1", 1), issued("EXP-1", 2), lifted("EXP-1", 2)]
    forward, backward = DirectiveBook(), DirectiveBook()
    for event in events:
        forward.apply(event)
    for event in reversed(events):
        backward.apply(event)
    assert (
        [(e.directive_id, e.revision, e.state) for e in forward.entries()]
        == [(e.directive_id, e.revision, e.state) for e in backward.entries()]
        == [("EXP-1", 2, "lifted")]
    )


def test_an_issue_after_the_lift_does_not_revive_the_directive() -> None:
    book = DirectiveBook()
    book.apply(issued("EXP-1", 1))
    book.apply(lifted("EXP-1", 1))
    book.apply(issued("EXP-1", 2))
    assert book.get("EXP-1").state == "lifted"


def test_catch_up_waits_for_every_partition_with_records() -> None:
    catch_up = CatchUp({0: 2, 1: 0, 2: 1})
    assert not catch_up.caught_up
    catch_up.saw(0, 1)
    assert not catch_up.caught_up
    catch_up.saw(2, 0)
    assert catch_up.caught_up


def test_an_empty_topic_is_caught_up_at_once() -> None:
    assert CatchUp({0: 0, 1: 0}).caught_up
