"""Stuck consumers: a record that keeps failing, a group whose lag does not move, dead letters never written."""

from __future__ import annotations

from shared.contracts.catalogue import DIRECTIVES
from shared.runtime.health import ConsumerWatch, LagWatch, readiness
from shared.runtime.settings import KafkaSettings

TOPIC = DIRECTIVES.name


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_record_failing_more_than_the_bound_is_stuck_until_the_consumer_gets_past_it() -> None:
    watch = ConsumerWatch("impact", stuck_after=3)
    for _ in range(3):
        watch.failed(TOPIC, 1, 7, "RuntimeError: boom")
    assert watch.healthy
    watch.failed(TOPIC, 1, 7, "RuntimeError: boom")
    assert not watch.healthy
    assert readiness(True, watch)[0] == 503
    watch.passed(TOPIC, 1, 7)
    assert watch.healthy and readiness(True, watch) == (200, {"ready": True, "stuck": [], "unwritten_dead_letters": 0})


def test_a_group_whose_committed_offset_does_not_move_while_records_wait_is_stuck() -> None:
    clock, watch = Clock(), ConsumerWatch("enforcement")
    lag = LagWatch(KafkaSettings(), "g", (DIRECTIVES,), watch, stall_after_s=60, clock=clock)
    lag.observe({(TOPIC, 0): 5}, {(TOPIC, 0): 9, (TOPIC, 1): 0})
    clock.now = 59
    lag.observe({(TOPIC, 0): 5}, {(TOPIC, 0): 9, (TOPIC, 1): 0})
    assert watch.healthy
    clock.now = 61
    lag.observe({(TOPIC, 0): 5}, {(TOPIC, 0): 9, (TOPIC, 1): 0})
    assert [s.describe() for s in watch.stuck.values()] == [
        {"topic": TOPIC, "partition": 0, "offset": 5, "why": "no progress for 61s with 4 records waiting"}
    ]
    lag.observe({(TOPIC, 0): 6}, {(TOPIC, 0): 9, (TOPIC, 1): 0})
    assert watch.healthy


def test_a_caught_up_group_that_does_not_move_is_not_stuck() -> None:
    clock, watch = Clock(), ConsumerWatch("audit")
    lag = LagWatch(KafkaSettings(), "g", (DIRECTIVES,), watch, stall_after_s=1, clock=clock)
    for clock.now in (0, 10, 100):
        lag.observe({(TOPIC, 0): 9}, {(TOPIC, 0): 9})
    assert watch.healthy


def test_unwritten_dead_letters_are_counted_in_the_readiness_body() -> None:
    watch = ConsumerWatch("notifier")
    watch.letter_unwritten(TOPIC, 0, 3, "KafkaTimeoutError()")
    assert readiness(True, watch)[1]["unwritten_dead_letters"] == 1
