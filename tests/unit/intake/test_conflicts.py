"""The desk's confirmation before a shared publish commits: what another instance committed first for the same
directive turns the request into a 409 with nothing recorded; a record read twice or another directive's does not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.intake.book import CatchUp
from services.intake.desk import Conflict, DirectiveDesk, NotReady, request_digest
from shared.contracts.directives import DirectiveIssued
from shared.contracts.envelope import envelope
from tests.unit.intake.conftest import ALONE, request


def issued_elsewhere(directive_id: str, revision: int, title: str = "elsewhere") -> DirectiveIssued:
    """What another intake instance committed (read back from the topic)."""
    return DirectiveIssued(
        **envelope("intake", correlation_id=directive_id),
        directive_id=directive_id,
        revision=revision,
        title=title,
        scope=request(directive_id, title).scope,
        proposed_by="erin",
        emergency=True,
        emergency_reason="drill",
    )


class SharedTopic:
    """A publisher shared with another instance: before confirming, the records committed ahead of this one
    (`ahead`) are read into the desk, as the arbiter does; a refused confirmation publishes nothing."""

    def __init__(self) -> None:
        self.desk: DirectiveDesk | None = None
        self.ahead: Callable[[DirectiveDesk], None] = lambda desk: None
        self.committed: list[DirectiveIssued] = []
        self.offset = 10

    async def publish(self, event: DirectiveIssued) -> int:
        assert self.desk is not None
        self.ahead(self.desk)
        self.ahead = lambda desk: None
        self.desk.confirm()
        self.committed.append(event)
        self.offset += 1
        return self.offset


def shared_desk() -> tuple[DirectiveDesk, SharedTopic]:
    topic = SharedTopic()
    desk = DirectiveDesk(topic.publish)
    desk.expect({0: 0})
    topic.desk = desk
    return desk, topic


async def test_an_amendment_that_lost_to_another_instance_is_refused_naming_its_revision_and_recorded_nowhere() -> None:
    desk, topic = shared_desk()
    await desk.issue(request(title="v1"), ALONE)
    topic.ahead = lambda d: d.record(issued_elsewhere("EXP-1", 2, "theirs"), 0, 5)

    with pytest.raises(Conflict) as refused:
        await desk.issue(request(title="mine"), ALONE)

    assert refused.value.status == 409 and refused.value.revision == 2
    assert "was published meanwhile and the directive is at revision 2" in str(refused.value)
    assert "nothing was published" in str(refused.value)
    assert [e.title for e in topic.committed] == ["v1"]  # the loser committed nothing
    assert (desk.book.get("EXP-1").revision, desk.book.get("EXP-1").title) == (2, "theirs")
    # The desk now knows revision 2: the request sent again becomes revision 3.
    assert (await desk.issue(request(title="mine"), ALONE)).event.revision == 3


async def test_a_record_read_twice_or_another_directive_moving_is_no_conflict() -> None:
    desk, topic = shared_desk()
    first = (await desk.issue(request(title="v1"), ALONE)).event

    def ahead(d: DirectiveDesk) -> None:
        d.record(first, 0, 11)  # our own revision 1, read back by the view and again by the arbiter
        d.record(first, 0, 11)
        d.record(issued_elsewhere("OTHER-9", 4), 0, 12)

    topic.ahead = ahead
    assert (await desk.issue(request(title="v2"), ALONE)).event.revision == 2


async def test_the_same_keyed_request_answered_by_another_instance_first_is_replayed_not_published_again() -> None:
    desk, topic = shared_desk()
    await desk.issue(request(title="v1"), ALONE)
    payload = {"request": request(title="v2").model_dump(mode="json"), "by": ALONE.proposed_by}
    digest = request_digest("issue", {**payload, "emergency_reason": ALONE.emergency_reason})
    theirs = issued_elsewhere("EXP-1", 2, "v2").model_copy(update={"idempotency_key": "k-1", "request_digest": digest})
    topic.ahead = lambda d: d.record(theirs, 0, 7)  # another instance answered this very request first

    decision = await desk.issue(request(title="v2"), ALONE, key="k-1")

    assert (decision.outcome, decision.event.event_id) == ("replayed", theirs.event_id)
    assert [e.title for e in topic.committed] == ["v1"]


def test_catch_up_counts_a_position_past_trailing_transaction_markers() -> None:
    # Records at 0 and 1, the commit marker at 2: no record shows offset 2, the reader's position does.
    catch_up = CatchUp({0: 3})
    catch_up.saw(0, 0)
    catch_up.saw(0, 1)
    assert not catch_up.caught_up
    catch_up.reached(0, 3)
    assert catch_up.caught_up


async def test_nothing_is_confirmed_before_the_view_caught_up() -> None:
    topic = SharedTopic()
    desk = DirectiveDesk(topic.publish)
    desk.expect({0: 3})
    with pytest.raises(NotReady):
        await desk.issue(request(), ALONE)
    desk.reached(0, 3)
    topic.desk = desk
    assert (await desk.issue(request(), ALONE)).event.revision == 1
