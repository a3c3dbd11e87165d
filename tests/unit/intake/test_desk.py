"""The desk: revisions assigned once per id, nothing recorded when publishing fails, refusal until caught up."""

from __future__ import annotations

import asyncio

import pytest

from services.intake.book import IdempotencyKeyReused
from services.intake.desk import DirectiveDesk, NotReady, PublishFailed
from tests.unit.intake.conftest import ALONE, request
from tests.unit.intake.fakes import FakeTopic


def ready_desk(topic: FakeTopic) -> DirectiveDesk:
    desk = DirectiveDesk(topic.publish)
    desk.expect({0: 0})
    return desk


async def test_issue_publishes_with_the_envelope_intake_owes() -> None:
    topic = FakeTopic()
    event = (await ready_desk(topic).issue(request(), ALONE)).event
    assert topic.events == [event]
    assert (event.producer, event.correlation_id, event.revision) == ("intake", "EXP-1", 1)


async def test_concurrent_issues_of_one_id_get_distinct_revisions() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    await asyncio.gather(*(desk.issue(request(title=f"t{i}"), ALONE) for i in range(5)))
    assert sorted(e.revision for e in topic.events) == [1, 2, 3, 4, 5]


async def test_concurrent_identical_issues_publish_once() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    decisions = await asyncio.gather(*(desk.issue(request(), ALONE) for _ in range(5)))
    assert len(topic.events) == 1
    assert sorted(d.outcome for d in decisions) == ["published"] + ["unchanged"] * 4
    assert {d.event.event_id for d in decisions} == {topic.events[0].event_id}


async def test_a_failed_publish_leaves_the_book_unchanged() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    topic.failing = True
    with pytest.raises(PublishFailed, match="EXP-1"):
        await desk.issue(request(), ALONE)
    topic.failing = False
    assert (await desk.issue(request(), ALONE)).event.revision == 1


async def test_nothing_is_issued_before_the_view_caught_up() -> None:
    topic = FakeTopic()
    desk = DirectiveDesk(topic.publish)
    desk.expect({0: 2})
    with pytest.raises(NotReady):
        await desk.issue(request(), ALONE)
    desk.record(None, 0, 0)
    desk.record(None, 0, 1)
    assert desk.ready and (await desk.issue(request(), ALONE)).event.revision == 1


async def test_records_read_from_the_topic_feed_the_book() -> None:
    topic = FakeTopic()
    earlier = (await ready_desk(topic).issue(request(), ALONE)).event
    desk = ready_desk(FakeTopic())
    desk.record(earlier, 0, 0)
    assert (await desk.lift("EXP-1", "revoked", ALONE)).event.revision == 1


async def test_the_same_key_and_request_is_answered_with_the_first_event() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    first = await desk.issue(request(), ALONE, key="k-1")
    again = await desk.issue(request(), ALONE, key="k-1")
    assert (first.outcome, again.outcome) == ("published", "replayed")
    assert again.event == first.event and topic.events == [first.event]
    assert (first.event.idempotency_key, len(first.event.request_digest or "")) == ("k-1", 64)


async def test_the_same_key_with_a_different_request_is_refused_naming_the_key() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    await desk.issue(request(), ALONE, key="k-1")
    with pytest.raises(IdempotencyKeyReused, match="'k-1'"):
        await desk.issue(request(title="other"), ALONE, key="k-1")
    with pytest.raises(IdempotencyKeyReused, match="'k-1'"):
        await desk.lift("EXP-1", "revoked", ALONE, key="k-1")
    assert len(topic.events) == 1


async def test_keys_are_rebuilt_from_the_topic_after_a_restart() -> None:
    topic = FakeTopic()
    first = ready_desk(topic)
    issued = (await first.issue(request(), ALONE, key="k-issue")).event
    lifted = (await first.lift("EXP-1", "revoked", ALONE, key="k-lift")).event
    restarted = ready_desk(FakeTopic())
    for offset, event in enumerate(topic.events):
        restarted.record(event, 0, offset)
    assert (await restarted.issue(request(), ALONE, key="k-issue")).event == issued
    assert (await restarted.lift("EXP-1", "revoked", ALONE, key="k-lift")).event == lifted
    with pytest.raises(IdempotencyKeyReused):
        await restarted.lift("EXP-1", "another reason", ALONE, key="k-lift")


async def test_without_a_key_a_request_the_directive_already_says_is_unchanged() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    first = await desk.issue(request(), ALONE)
    again = await desk.issue(request(), ALONE)
    amended = await desk.issue(request(title="amended"), ALONE)
    assert (again.outcome, again.event) == ("unchanged", first.event)
    assert (amended.outcome, amended.event.revision) == ("published", 2)
    assert [e.revision for e in topic.events] == [1, 2]
