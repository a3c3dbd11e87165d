"""Using both cores: a large import's upserts produced by this process and a forked one, each owning half of the
partitions, so each partition is still written by one producer in file order.

Per record the import is CPU-bound in Python (a SHA-1, a value, an append), which one process cannot spread
over cores. The second process is forked after validation: it shares the validated columns copy-on-write
instead of receiving them, runs an event loop and a producer of its own, reports what the broker acknowledged
through a queue, and exits.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pyarrow as pa

from cli.imports.partitions import partitions_for

PARALLEL_FROM = 400_000  # upserts; below that a second process costs more than it gives
DONE = "done"


def processes_for(upserts: int) -> int:
    """How many producer processes an import of this many upserts uses (1 or 2): 2 only on Linux, where forking
    after Arrow's threads have run is safe (macOS's system libraries are not fork-safe)."""
    return 2 if upserts >= PARALLEL_FROM and (os.cpu_count() or 1) >= 2 and sys.platform == "linux" else 1


def halves(upserts: pa.Table, partitions: int) -> tuple[pa.Table, pa.Table]:
    """The upserts on even partitions and those on odd ones, each in file order."""
    keys = upserts.column("user_id").combine_chunks().cast(pa.string()).cast(pa.binary())
    odd = (partitions_for(keys, partitions) % 2).astype(bool)
    return upserts.filter(pa.array(~odd)), upserts.filter(pa.array(odd))


class SecondProducer:
    """A forked process producing its share; acknowledged counts and its outcome come back through a queue."""

    def __init__(self, work: Callable[[Callable[[int], None]], Coroutine[Any, Any, Any]]) -> None:
        context = multiprocessing.get_context("fork")
        self._queue: multiprocessing.Queue = context.Queue()
        self._process = context.Process(target=self._main, args=(work,), daemon=True, name="registry-import-2")
        self._outcome: str | None = None

    def start(self) -> SecondProducer:
        self._process.start()
        return self

    def _main(self, work: Callable[[Callable[[int], None]], Coroutine[Any, Any, Any]]) -> None:
        try:
            asyncio.run(work(self._queue.put))
            self._queue.put(DONE)
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent reports it
            self._queue.put(f"{type(exc).__name__}: {exc}")
            raise SystemExit(1) from exc
        finally:
            self._queue.close()
            self._queue.join_thread()

    def acknowledged(self) -> int:
        """Records the broker acknowledged to it since the last call (without waiting)."""
        count = 0
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += self._take(message)

    async def finish(self) -> int:
        """Wait for it to end; the records acknowledged since the last count. RuntimeError if it failed."""
        count = 0
        while self._outcome is None:
            try:
                message = await asyncio.to_thread(self._queue.get, True, 0.5)
            except queue.Empty:
                if not self._process.is_alive():
                    self._outcome = f"exited with {self._process.exitcode}"
                continue
            count += self._take(message)
        await asyncio.to_thread(self._process.join, 30)
        if self._outcome != DONE:
            raise RuntimeError(f"the second producer process failed: {self._outcome}")
        return count

    def stop(self) -> None:
        """Kill it if it still runs (the import failed or was interrupted)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5)

    def _take(self, message: int | str) -> int:
        if isinstance(message, str):
            self._outcome = message
            return 0
        return int(message)
