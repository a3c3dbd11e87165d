"""A command's durable write runs off the event loop, and the store is never used by two writers at once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from pyroaring import BitMap

from services.agent.access import AccessChecker
from services.agent.command_effects import on_restrict
from services.agent.holding import Holding
from services.agent.restriction_store import RestrictionStore
from tests.unit.agent.builders import restrict


class SlowStore(RestrictionStore):
    """A store whose next record() waits, on its thread, until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered, self.release, self.events = threading.Event(), threading.Event(), []

    def record(self, *args, **kwargs) -> None:
        self.entered.set()
        assert self.release.wait(10), "record() was never released"
        super().record(*args, **kwargs)
        self.events.append("recorded")

    def fold(self, state) -> int:
        self.events.append("folded")
        return super().fold(state)


async def _until(flag: threading.Event) -> None:
    for _ in range(1000):
        if flag.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the write never started")


async def test_the_loop_runs_on_while_a_revision_is_written_and_the_store_waits_for_it(tmp_path: Path) -> None:
    store = SlowStore(tmp_path / "agent.sqlite3")
    holding = Holding(store, AccessChecker())
    outcome = on_restrict(holding.state, restrict("D-1", 1, "fable-5", [1, 2]))
    write = asyncio.create_task(holding.write("D-1", outcome, 0, 7))
    await _until(store.entered)
    ticks = 0
    for _ in range(5):  # the event loop is free while record() blocks its thread
        await asyncio.sleep(0)
        ticks += 1
    fold = asyncio.create_task(holding.fold())
    await asyncio.sleep(0.05)
    assert ticks == 5 and not fold.done() and store.events == []  # fold waits for the write's lock
    store.release.set()
    await write
    await fold
    assert store.events == ["recorded", "folded"]
    assert holding.offsets == {0: 8} and holding.store.load()[0].held["D-1"].sets == {"fable-5": BitMap([1, 2])}
    await holding.close()


async def test_a_cancelled_caller_leaves_the_write_to_finish_before_the_store_closes(tmp_path: Path) -> None:
    store = SlowStore(tmp_path / "agent.sqlite3")
    holding = Holding(store, AccessChecker())
    outcome = on_restrict(holding.state, restrict("D-1", 1, "fable-5", [3]))
    write = asyncio.create_task(holding.write("D-1", outcome, 0, 0))
    await _until(store.entered)
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    closing = asyncio.create_task(holding.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # the write still holds the store
    store.release.set()
    await closing
    assert store.events == ["recorded"]
    assert RestrictionStore(tmp_path / "agent.sqlite3").load()[0].held["D-1"].sets == {"fable-5": BitMap([3])}


async def test_a_failed_write_falls_back_to_what_is_durable_and_raises(tmp_path: Path) -> None:
    holding = Holding(RestrictionStore(tmp_path / "agent.sqlite3"), AccessChecker())
    outcome = on_restrict(holding.state, restrict("D-1", 1, "fable-5", [3]))

    def broken(*args, **kwargs) -> None:
        raise OSError("disk full")

    holding.store.record = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        await holding.write("D-1", outcome, 0, 0)
    assert holding.state.held == {} and holding.offsets == {}
    await holding.close()
