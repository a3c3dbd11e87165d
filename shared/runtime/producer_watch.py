"""A service whose Kafka producer has failed for good stops, so its orchestrator restarts it: checked against
aiokafka==0.14.0 and faststream==0.7.8.

aiokafka's producer sends from one background task. On a fatal error (OutOfOrderSequenceNumber, ProducerFenced,
a transactional-id authorisation failure, or any unexpected error) that task ends; the batches pending fail,
and every later send waits forever. Nothing in the producer says so. `watch()` puts a done-callback on that
task (`AIOKafkaProducer._sender.sender_task`); `broker_producer()` finds the aiokafka producer inside a started
FastStream KafkaBroker (`broker.config.producer._producer.producer`). tests/unit/shared/test_producer_watch.py
fails loudly if an upgrade moves either.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer

CHECKED_AGAINST = {"faststream": "0.7.8", "aiokafka": "0.14.0"}
EXIT_CODE = 70  # EX_SOFTWARE: the process stopped itself because a part of it failed for good
OnFatal = Callable[[str, BaseException], None]

log = structlog.get_logger()
_failures: list[str] = []


def sender_task(producer: AIOKafkaProducer) -> asyncio.Task | None:
    """The task that sends the producer's batches (None before start)."""
    return producer._sender.sender_task


def broker_producer(broker: Any) -> AIOKafkaProducer | None:
    """The aiokafka producer of a started FastStream KafkaBroker (None before start, or consumer-only)."""
    state = broker.config.producer._producer  # RealProducer once connected, else a falsy empty state
    return state.producer if state else None


def watch(producer: AIOKafkaProducer, name: str, on_fatal: OnFatal) -> bool:
    """Call `on_fatal(name, error)` once if the producer's sending task ends with an error (not on a normal stop).
    False when the producer has no sending task to watch (not started)."""
    task = sender_task(producer)
    if task is None:
        return False

    def ended(done: asyncio.Task) -> None:
        if done.cancelled() or done.exception() is None:
            return
        on_fatal(name, done.exception())  # type: ignore[arg-type]

    task.add_done_callback(ended)
    return True


def stop_process(name: str, error: BaseException) -> None:
    """The default on_fatal of a service process: log why, then SIGTERM this process, so it stops as on any
    SIGTERM (HTTP server, consumers, offsets) and `run()` exits with EXIT_CODE instead of staying half alive."""
    reason = f"{name}: {type(error).__name__}: {error}"
    _failures.append(reason)
    log.critical(
        "Kafka producer failed for good; stopping so the orchestrator restarts this service",
        producer=name,
        error=type(error).__name__,
        detail=str(error)[:500],
        exit_code=EXIT_CODE,
    )
    os.kill(os.getpid(), signal.SIGTERM)


def failures() -> list[str]:
    """The fatal producer failures of this process so far."""
    return list(_failures)
