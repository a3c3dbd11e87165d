"""How a channel drives its sends: a few workers, a rate limit, and transient failures retried later with
full-jitter backoff without holding a worker, so one slow recipient never stalls the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from services.notifier.retry import Backoff, Outcome
from services.notifier.settings import ChannelLimits
from shared.runtime.service import cancel_tasks

Attempt = Callable[[int], Awaitable[Outcome]]  # one try at item i
Worker = Callable[[], AbstractAsyncContextManager[Attempt]]  # a worker's session (an SMTP connection, a client)


class Throttle:
    """At most rate_per_s starts per second over every worker of a channel, evenly spaced (0: no limit)."""

    def __init__(self, rate_per_s: float) -> None:
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


def backoff_of(limits: ChannelLimits) -> Backoff:
    return Backoff(limits.backoff_base_s, limits.backoff_cap_s, limits.attempts)


async def settle_all(count: int, worker: Worker, limits: ChannelLimits, throttle: Throttle) -> list[Outcome]:
    """An outcome for each of `count` items: delivered, permanent, or transient once the attempts ran out."""
    backoff = backoff_of(limits)
    outcomes: dict[int, Outcome] = {}
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait((index, 0))
    finished = asyncio.Event()
    waiting: set[asyncio.Task[None]] = set()

    def settle(index: int, outcome: Outcome) -> None:
        outcomes[index] = outcome
        if len(outcomes) == count:
            finished.set()

    async def again_later(index: int, attempt: int) -> None:
        await asyncio.sleep(backoff.delay(attempt - 1))
        queue.put_nowait((index, attempt))

    async def work() -> None:
        async with worker() as attempt_at:
            while True:
                index, attempt = await queue.get()
                await throttle.wait()
                try:
                    outcome = await attempt_at(index)
                except Exception as exc:  # a channel bug must not hang the batch: retried, then failed
                    outcome = Outcome("transient", f"{type(exc).__name__}: {exc}")
                if outcome.verdict != "transient":
                    settle(index, outcome)
                elif backoff.gives_up(attempt):
                    settle(index, Outcome("transient", f"gave up after {attempt + 1} attempts: {outcome.reason}"))
                else:  # tried again later from the queue: this worker serves the next recipient meanwhile
                    task = asyncio.create_task(again_later(index, attempt + 1))
                    waiting.add(task)
                    task.add_done_callback(waiting.discard)

    if count == 0:
        return []
    workers = [asyncio.create_task(work()) for _ in range(min(limits.concurrency, count))]
    try:
        await finished.wait()
    finally:
        await cancel_tasks(*workers, *waiting)
    return [outcomes[i] for i in range(count)]
