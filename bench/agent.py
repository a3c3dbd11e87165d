"""Benchmark the agent: in-process checks per second, HTTP access latency at 1,000 requests/s, memory at 100M users.

Run: .venv/bin/python -m bench.agent   (writes bench/results/agent.json)

Everything goes through the agent's own code: restrictions are applied with the same `on_restrict` the
Kafka handler calls, checks use the `AccessChecker` a gateway embeds, and the HTTP numbers come from the
agent's access API served by uvicorn exactly as the agent serves it, loaded from a second process.
No Kafka is needed: the broker plays no part in answering a check.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from pyroaring import BitMap

from bench.report import publish
from services.agent.access import AccessChecker
from services.agent.commands import on_restrict
from services.agent.restrictions import Restrictions
from shared.contracts.bitmaps import chunk_bitmap, encode_bitmap, scope_digest, set_digest
from shared.contracts.serving import RestrictCommand

NOW = datetime.now(UTC)
USER_SPACE = 4_000_000  # the three 1M-user directives overlap inside it
DIRECTIVE_USERS = 1_000_000
SINGLE_CHECKS = 2_000_000
BATCH_IDS = 1_000_000
BATCH_ROUNDS = 10
HTTP_RATE = 1_000
HTTP_SECONDS = 10
HTTP_CONNECTIONS = 8
HTTP_WARMUP = 500
MEMORY_UNIVERSE = 100_000_000


# --- state through the agent's apply code --------------------------------------------------------

def restrict_commands(directive: str, sets: dict[str, BitMap], **window: Any) -> list[RestrictCommand]:
    """A directive revision as the chunked commands enforcement would send."""
    expected = scope_digest({model: set_digest(users) for model, users in sets.items()})
    parts = [(model, chunk) for model, users in sorted(sets.items()) for chunk in chunk_bitmap(users)]
    return [RestrictCommand(producer="bench", cluster_id="bench", directive_id=directive, revision=1, model=model,
                            chunk=i, chunks=len(parts), users=encode_bitmap(users), expected_digest=expected,
                            **window) for i, (model, users) in enumerate(parts)]


def three_directives() -> Restrictions:
    """Three active, overlapping 1M-user directives over two models, applied like commands off the topic."""
    rng = np.random.default_rng(7)

    def users() -> BitMap:
        ids = np.sort(rng.choice(USER_SPACE, DIRECTIVE_USERS, replace=False).astype(np.uint32))
        return BitMap(array.array("I", ids.tobytes()))
    state = Restrictions()
    for command in [*restrict_commands("D1", {"fable-5": users(), "mythos-5": users()}),
                    *restrict_commands("D2", {"fable-5": users()}, expires_at=NOW + timedelta(days=1)),
                    *restrict_commands("D3", {"mythos-5": users()}, effective_from=NOW - timedelta(days=1))]:
        on_restrict(state, command, NOW)
    assert len(state.held) == 3 and not state.staging
    return state


def ready_checker(state: Restrictions) -> AccessChecker:
    checker = AccessChecker(stale_after=timedelta(days=1))
    checker.replace(state.held)
    checker.mark_ready(NOW)
    return checker


# --- in-process checks -----------------------------------------------------------------------------

def _one_core() -> set[int]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return before


def single_checks_per_s(checker: AccessChecker) -> tuple[float, float]:
    """A tight loop of `denies(user, model, now)`; returns (checks/s, denied share)."""
    ids = np.random.default_rng(11).integers(0, USER_SPACE, SINGLE_CHECKS).tolist()
    denies, at, half = checker.denies, NOW.timestamp(), SINGLE_CHECKS // 2
    fable, mythos = ids[:half], ids[half:]
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for user in fable:
            denies(user, "fable-5", at)
        for user in mythos:
            denies(user, "mythos-5", at)
        best = max(best, SINGLE_CHECKS / (time.perf_counter() - started))
    denied = sum(denies(u, "fable-5", at) for u in fable) + sum(denies(u, "mythos-5", at) for u in mythos)
    return best, denied / SINGLE_CHECKS


def batch_checks_per_s(checker: AccessChecker) -> float:
    """`denies_many` over numpy arrays of 1M user ids, alternating models."""
    rng = np.random.default_rng(12)
    batches = [rng.integers(0, USER_SPACE, BATCH_IDS).astype(np.uint32) for _ in range(BATCH_ROUNDS)]
    at = NOW.timestamp()
    checker.denies_many(batches[0], "fable-5", at)
    started = time.perf_counter()
    for i, users in enumerate(batches):
        checker.denies_many(users, ("fable-5", "mythos-5")[i % 2], at)
    return BATCH_ROUNDS * BATCH_IDS / (time.perf_counter() - started)


# --- HTTP ------------------------------------------------------------------------------------------

def serve(port: int) -> None:
    """The agent's access API over the three directives, served the way the agent serves it."""
    import uvicorn

    from services.agent.http import access_api
    from shared.contracts.envelope import utc_now

    state = three_directives()
    config = uvicorn.Config(access_api(ready_checker(state), state.describe, utc_now), host="127.0.0.1",
                            port=port, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run()


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user: int, model: str) -> float:
    started = time.perf_counter()
    writer.write(f"GET /v1/access?user={user}&model={model} HTTP/1.1\r\nHost: agent\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    body = await reader.readexactly(length)
    elapsed = time.perf_counter() - started
    if not head.startswith(b"HTTP/1.1 200") or b'"decision"' not in body:
        raise RuntimeError(f"unexpected answer: {head[:40]!r} {body[:80]!r}")
    return elapsed


async def _paced_load(port: int) -> tuple[list[float], float]:
    """Requests paced at HTTP_RATE over keep-alive connections; each latency from write to last byte read.

    Request i is due at start + i / HTTP_RATE and goes out on connection i mod HTTP_CONNECTIONS (each
    connection has its own worker, so no task is created per request).
    """
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(HTTP_CONNECTIONS)]
    users = np.random.default_rng(13).integers(0, USER_SPACE, HTTP_WARMUP + HTTP_RATE * HTTP_SECONDS).tolist()
    for i in range(HTTP_WARMUP):
        await _request(*connections[i % HTTP_CONNECTIONS], users[i], "fable-5")
    total, loop = HTTP_RATE * HTTP_SECONDS, asyncio.get_running_loop()
    latencies: list[float] = []
    started = loop.time()

    async def worker(first: int) -> None:
        reader, writer = connections[first]
        for i in range(first, total, HTTP_CONNECTIONS):
            delay = started + i / HTTP_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            latencies.append(await _request(reader, writer, users[HTTP_WARMUP + i], ("fable-5", "mythos-5")[i % 2]))

    await asyncio.gather(*(worker(k) for k in range(HTTP_CONNECTIONS)))
    rate = total / (loop.time() - started)
    for _, writer in connections:
        writer.close()
    return latencies, rate


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the access API process exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("the access API did not start")


def http_latencies() -> tuple[float, float, float, float, float]:
    """(p50 ms, p99 ms, max ms, achieved requests/s, server CPU ms per request) of /v1/access served by a
    second process."""
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bench.agent", "serve", str(port)], stdin=subprocess.DEVNULL)
    try:
        _wait_listening(port, server)
        cpu = psutil.Process(server.pid)
        before = sum(cpu.cpu_times()[:2])
        latencies, rate = asyncio.run(_paced_load(port))
        cpu_ms = (sum(cpu.cpu_times()[:2]) - before) * 1000 / (len(latencies) + HTTP_WARMUP)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max()), rate, cpu_ms


# --- memory at 100M users --------------------------------------------------------------------------

def _rss() -> int:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed parsing buffers back, as a long-running agent would
    return psutil.Process().memory_info().rss


def hold(commands_file: Path) -> None:
    """Apply a 100M-user directive from its chunked commands; print the RSS increase and sizes as JSON."""
    lines = commands_file.read_text().splitlines()
    process = psutil.Process()
    baseline = peak = _rss()
    state = Restrictions()
    for line in lines:
        on_restrict(state, RestrictCommand.model_validate_json(line), NOW)
        peak = max(peak, process.memory_info().rss)  # sampled per command (ru_maxrss survives exec: useless here)
    checker = ready_checker(state)
    checker.denies(0, "fable-5", NOW.timestamp())  # the check view is built too
    increase = _rss() - baseline
    peak = max(peak, process.memory_info().rss) - baseline
    users = state.held["D-100M"].sets["fable-5"]
    print(json.dumps({"rss_increase": increase, "peak_increase": peak, "serialized": len(users.serialize()),
                      "users": len(users)}))


def memory_at_100m() -> dict[str, Any]:
    rng = np.random.default_rng(17)
    ids = np.flatnonzero(np.unpackbits(rng.integers(0, 256, MEMORY_UNIVERSE // 8, dtype=np.uint8)))
    users = BitMap(array.array("I", ids.astype(np.uint32).tobytes()))
    del ids
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "commands.jsonl"
        path.write_text("\n".join(c.model_dump_json() for c in restrict_commands("D-100M", {"fable-5": users})))
        out = subprocess.run([sys.executable, "-m", "bench.agent", "hold", str(path)], check=True,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    measured = json.loads(out.strip().splitlines()[-1])
    assert measured["users"] == len(users)
    return measured


# --- the table ---------------------------------------------------------------------------------------

def main() -> None:
    state = three_directives()
    checker = ready_checker(state)
    affinity = _one_core()
    try:
        single, denied_share = single_checks_per_s(checker)
        batch = batch_checks_per_s(checker)
    finally:
        os.sched_setaffinity(0, affinity)
    p50, p99, worst, rate, cpu_ms = http_latencies()
    held = memory_at_100m()
    mb = 2**20
    rows = [
        {"metric": "check_per_s (single)", "value": round(single), "unit": "checks/s", "target": ">= 2000000",
         "note": f"AccessChecker.denies(user, model, at) called in a Python loop, one core; 3 active overlapping 1M-user "
                 f"directives, 2 models; {denied_share:.0%} denied"},
        {"metric": "check_per_s (batch)", "value": round(batch), "unit": "checks/s", "target": ">= 2000000",
         "note": f"AccessChecker.denies_many(numpy ids, model, at), {BATCH_IDS:,} ids per call, one core"},
        {"metric": "http_p50_ms", "value": round(p50, 3), "unit": "ms", "target": "",
         "note": f"GET /v1/access at {rate:,.0f} req/s for {HTTP_SECONDS} s from a second process, "
                 f"{HTTP_CONNECTIONS} keep-alive connections, loopback"},
        {"metric": "http_p99_ms", "value": round(p99, 3), "unit": "ms", "target": "<= 2",
         "note": f"same run; max {worst:.1f} ms; latency from request write to last response byte"},
        {"metric": "http_server_cpu_ms", "value": round(cpu_ms, 3), "unit": "ms/request", "target": "",
         "note": "CPU (user+sys) the serving process spent per request in that run"},
        {"metric": "agent_mb_100M", "value": round(held["rss_increase"] / mb, 1), "unit": "MB", "target": "<= 64",
         "note": f"RSS increase holding a directive over {held['users']:,} random users of 0..100M, applied from "
                 f"its chunked commands by on_restrict, check view built"},
        {"metric": "agent_peak_mb_100M", "value": round(held["peak_increase"] / mb, 1), "unit": "MB", "target": "",
         "note": "highest RSS above the baseline sampled after each command while applying"},
        {"metric": "agent_mb_100M (serialized)", "value": round(held["serialized"] / mb, 1), "unit": "MB",
         "target": "<= 64", "note": "the held roaring bitmap as the snapshot stores it"},
    ]
    publish("agent", rows, "Agent: checks, HTTP latency, memory")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    elif sys.argv[1:2] == ["hold"]:
        hold(Path(sys.argv[2]))
    else:
        main()
