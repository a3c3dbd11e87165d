"""The agent's background loops: heartbeats, staging housekeeping, and waiting to catch up with its commands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiokafka.errors import KafkaError

from services.agent.handling import CommandHandling
from services.agent.readiness import behind, committed_offsets
from services.agent.settings import AgentSettings
from shared.contracts.catalogue import COMMANDS
from shared.runtime.kafka import admin


async def heartbeats(beat: Callable[[], Awaitable[None]], interval_s: float, log: Any) -> None:
    """One heartbeat per interval, for ever; a missed one is not fatal, the next may get through."""
    while True:
        try:
            await beat()
        except Exception as exc:
            log.warning("heartbeat failed", error=repr(exc))
        await asyncio.sleep(interval_s)


async def housekeeping(handling: CommandHandling, settings: AgentSettings, log: Any) -> None:
    """Every second at most: report revisions whose chunks did not all come in time, and fold revisions
    applied from their chunks into plain sets in the snapshot (off the path to their acks, in a lull)."""
    timeout = timedelta(seconds=settings.chunk_timeout_s)
    while True:
        await asyncio.sleep(min(1.0, settings.chunk_timeout_s / 4))
        try:
            await handling.expire_staging(timeout)
            if time.monotonic() - handling.heard_at >= settings.fold_after_quiet_s:
                await handling.holding.fold()
        except Exception as exc:  # a broker or disk hiccup: the next pass tries again
            log.warning("staging housekeeping failed", error=repr(exc))


async def catch_up(settings: AgentSettings, begin: dict[int, int], end: dict[int, int], log: Any) -> None:
    """Return once the agent's group committed the commands end offsets noted at start."""
    async with admin(settings.kafka, f"agent-{settings.cluster_id}-catchup") as client:
        while True:
            try:
                lagging = behind(begin, end, await committed_offsets(client, settings.group, COMMANDS.name))
            except KafkaError as exc:  # e.g. the group coordinator is still loading: not ready yet, ask again
                log.debug("committed offsets unavailable", error=repr(exc))
                lagging = end
            if not lagging:
                return
            log.debug("catching up", partitions=lagging)
            await asyncio.sleep(settings.readiness_poll_s)
