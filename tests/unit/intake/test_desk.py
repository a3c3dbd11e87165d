"""The desk: revisions assigned once per id, nothing recorded when publishing fails, refusal until caught up."""

from __future__ import annotations

import asyncio

import pytest

from services.intake.desk import DirectiveDesk, NotReady, PublishFailed
from shared.contracts.directives import DirectiveRequest
from tests.unit.intake.fakes import FakeTopic


def request(directive_id: str = "EXP-1") -> DirectiveRequest:
    return DirectiveRequest.model_validate({
        "directive_id": directive_id, "title": "t",
        "scope": {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}})


def ready_desk(topic: FakeTopic) -> DirectiveDesk:
    desk = DirectiveDesk(topic.publish)
    desk.expect({0: 0})
    return desk


async def test_issue_publishes_with_the_envelope_intake_owes() -> None:
    topic = FakeTopic()
    event = await ready_desk(topic).issue(request())
    assert topic.events == [event]
    assert (event.producer, event.correlation_id, event.revision) == ("intake", "EXP-1", 1)


async def test_concurrent_issues_of_one_id_get_distinct_revisions() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    await asyncio.gather(*(desk.issue(request()) for _ in range(5)))
    assert sorted(e.revision for e in topic.events) == [1, 2, 3, 4, 5]


async def test_a_failed_publish_leaves_the_book_unchanged() -> None:
    topic = FakeTopic()
    desk = ready_desk(topic)
    topic.failing = True
    with pytest.raises(PublishFailed, match="EXP-1"):
        await desk.issue(request())
    topic.failing = False
    assert (await desk.issue(request())).revision == 1


async def test_nothing_is_issued_before_the_view_caught_up() -> None:
    topic = FakeTopic()
    desk = DirectiveDesk(topic.publish)
    desk.expect({0: 2})
    with pytest.raises(NotReady):
        await desk.issue(request())
    desk.record(None, 0, 0)
    desk.record(None, 0, 1)
    assert desk.ready and (await desk.issue(request())).revision == 1


async def test_records_read_from_the_topic_feed_the_book() -> None:
    topic = FakeTopic()
    earlier = await ready_desk(topic).issue(request())
    desk = ready_desk(FakeTopic())
    desk.record(earlier, 0, 0)
    assert (await desk.lift("EXP-1", "revoked")).revision == 1
