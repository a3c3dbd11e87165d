"""The shared dead-letter path on the real broker: bad input is set aside, the consumer goes on."""

from __future__ import annotations

import asyncio
import base64

from faststream.kafka import KafkaBroker

from devtools.observe import TopicReader, group_starts_at, topics_end
from shared.contracts.catalogue import DIRECTIVES, dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from shared.contracts.directives import DirectiveEvent, DirectiveIssued
from shared.runtime.broker import consumer_options, declare_publisher, emit, make_broker
from shared.runtime.deadletters import Rejected
from shared.runtime.settings import KafkaSettings, ServiceSettings


def _directive(directive_id: str) -> DirectiveIssued:
    return DirectiveIssued(
        producer="test",
        directive_id=directive_id,
        revision=1,
        title="t",
        scope={"models": ["fable-5"], "selector": {"kind": "everyone"}},
    )


def _service(bootstrap: str, group: str, prefix: str, seen: list, attempts: list) -> KafkaBroker:
    broker = make_broker(ServiceSettings(kafka=KafkaSettings(bootstrap=bootstrap)), "impact")

    @broker.subscriber(DIRECTIVES.name, **consumer_options(group))
    async def on_directive(body: DirectiveEvent) -> None:
        if not body.directive_id.startswith(prefix):
            return  # the topic is shared with the session's other tests
        if body.directive_id.endswith("-reject"):
            raise Rejected("directive refused for a domain reason")
        if body.directive_id.endswith("-crash"):
            attempts.append(body.directive_id)
            raise RuntimeError("store unavailable")
        seen.append(body.directive_id)

    return broker


async def test_poison_messages_are_dead_lettered_and_the_consumer_goes_on(bootstrap: str, unique: str) -> None:
    seen: list[str] = []
    attempts: list[str] = []
    dlq = dead_letter_topic("impact")
    ends = await topics_end(bootstrap, DIRECTIVES, dlq)
    group = f"dl-{unique}"
    # The group starts where the topic ends now: a fresh group would first work through every directive the
    # session's other tests left, and the four records below would wait behind them.
    await group_starts_at(bootstrap, group, {tp: o for tp, o in ends.items() if tp.topic == DIRECTIVES.name})

    def mine(messages: list) -> list[DeadLetter]:
        keys = {f"{unique}-bad", f"{unique}-reject", f"{unique}-crash"}
        return [m for m in messages if base64.b64decode(m.key_b64 or "").decode() in keys]

    broker = _service(bootstrap, group, unique, seen, attempts)
    async with broker:
        await broker.start()
        publisher = declare_publisher(broker, DIRECTIVES)
        await broker.publish(b"{not json", topic=DIRECTIVES.name, key=f"{unique}-bad".encode())
        await emit(publisher, DIRECTIVES, _directive(f"{unique}-reject"))
        await emit(publisher, DIRECTIVES, _directive(f"{unique}-crash"))
        await emit(publisher, DIRECTIVES, _directive(f"{unique}-good"))
        # The letters are awaited while the service runs: stopping it earlier could cut a letter short.
        async with TopicReader(bootstrap, dlq, start=ends) as reader:
            letters = await reader.drain(lambda ms: len(mine(ms)) == 3, 60, "three dead letters")
        for _ in range(200):
            if f"{unique}-good" in seen:
                break
            await asyncio.sleep(0.1)
    assert seen == [f"{unique}-good"]
    assert attempts == [f"{unique}-crash"] * 3, "a failing handler is retried a bounded number of times"
    reasons = {base64.b64decode(m.key_b64).decode(): m.reason for m in mine(letters)}
    assert reasons[f"{unique}-bad"].startswith("invalid message")
    assert "domain reason" in reasons[f"{unique}-reject"]
    assert "store unavailable" in reasons[f"{unique}-crash"]
    assert all(m.topic == DIRECTIVES.name for m in mine(letters))
