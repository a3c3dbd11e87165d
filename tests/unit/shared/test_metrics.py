"""Shared metrics: dead letters counted per service and source topic when written; lag per group and topic."""

from __future__ import annotations

from prometheus_client import REGISTRY

from shared.contracts.deadletter import DeadLetter
from shared.runtime.deadletters import write_dead_letter
from shared.runtime.health import ConsumerWatch
from shared.runtime.metrics import observe_lag
from tests.unit.shared.test_dead_letter_size import record


def letters(service: str) -> float:
    return (
        REGISTRY.get_sample_value("countermand_dead_letters_total", {"service": service, "topic": "identity.users.v1"})
        or 0
    )


async def test_a_dead_letter_is_counted_once_written_and_not_when_it_could_not_be() -> None:
    async def written(letter: DeadLetter) -> None:
        pass

    async def broker_down(letter: DeadLetter) -> None:
        raise ConnectionError("broker unreachable")

    watch = ConsumerWatch("metrics-test")
    assert await write_dead_letter(written, record(b"abc"), "metrics-test", ValueError("bad"), watch)
    assert not await write_dead_letter(broker_down, record(b"abc"), "metrics-test", ValueError("bad"), watch)
    assert letters("metrics-test") == 1


def test_lag_is_summed_per_topic_from_the_committed_offsets_to_the_ends() -> None:
    observe_lag(
        "g-metrics", {("a", 0): 5, ("a", 1): 7, ("b", 0): 3}, {("a", 0): 10, ("a", 1): 7, ("b", 0): 3, ("b", 1): 4}
    )
    lag = {
        t: REGISTRY.get_sample_value("countermand_consumer_lag_records", {"group": "g-metrics", "topic": t})
        for t in "ab"
    }
    assert lag == {"a": 5, "b": 4}  # partition b/1 has nothing committed: all of it waits
