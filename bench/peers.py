"""Countermand side by side with Open Policy Agent: one deny set of 1M and 10M users on two models, loaded into three
enforcement points each; memory, check latency, one user's change and the lift (bench/results/peers.json).

Run: `make bench-peers` (builds OPA from the Go module proxy first), or `python -m bench.peers --opa PATH`.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import subprocess
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from pyroaring import BitMap

from bench.agent import HTTP_CONNECTIONS, HTTP_RATE, HTTP_SECONDS, HTTP_WARMUP, _Connection, paced
from bench.enforce import (
    CLUSTERS,
    MODELS,
    POPULATION,
    AckWatch,
    Bench,
    affected_users,
    delta_runs,
    impact_messages,
    percentile,
    send_all,
    services_ready,
)
from bench.report import publish
from devtools.ports import free_port
from shared.contracts.bitmaps import scope_digest
from shared.contracts.catalogue import IMPACT
from shared.runtime.auth import API_KEY_HEADER
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / ".run" / "bench-peers"
REGO = ROOT / "deploy" / "peers" / "deny.rego"
OPA_VERSION = "v1.22.4"  # the Makefile's OPA_VERSION
SIZES = (1_000_000, 10_000_000)
WARM_UP_USERS = 100_000
COUNTERMAND_RUNS = 3  # loads (each then lifted) per size
OPA_RUNS = {1_000_000: 2}  # loads per size and path into three fresh servers; 1 for larger sets (a minute each)
CHANGES = 50  # one-user changes, one at a time
SETTLE_S = 3.0  # before reading resident memory: the collectors of both runtimes settle
OPA_START_S = 900.0


def label_of(size: int) -> str:
    return f"{size // 1_000_000}M"


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


# --- the paced check client, the same for both -----------------------------------------------------------


class AgentCheck(_Connection):
    """GET /v1/access on a Countermand agent, as a gateway (its API key)."""

    key = ""

    def request(self, user: int, model: str) -> bytes:
        return (
            f"GET /v1/access?user={user}&model={model} HTTP/1.1\r\nHost: agent\r\n{API_KEY_HEADER}: {self.key}\r\n\r\n"
        ).encode()


class OpaCheck(_Connection):
    """POST /v1/data/peers/deny on an OPA server with the user and model as input."""

    expect = b'"result"'

    def request(self, user: int, model: str) -> bytes:
        body = f'{{"input":{{"user":"{user}","model":"{model}"}}}}'
        return (
            f"POST /v1/data/peers/deny HTTP/1.1\r\nHost: opa\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()


def check_users(users: BitMap, seed: int) -> list[int]:
    """Half the checks on denied users, half on random ids of the population (almost all allowed)."""
    rng = np.random.default_rng(seed)
    count = HTTP_WARMUP + HTTP_RATE * HTTP_SECONDS
    denied = np.frombuffer(users.to_array(), dtype=np.uint32)[rng.integers(0, len(users), count // 2)]
    mixed = np.concatenate([denied.astype(np.int64), rng.integers(0, POPULATION, count - count // 2)])
    return rng.permutation(mixed).tolist()


def paced_checks(kind: type[_Connection], port: int, users: list[int]) -> tuple[np.ndarray, float]:
    """bench.agent's paced client over keep-alive connections of `kind`: (latencies in ms, achieved rate)."""
    read, _, rate = paced(kind, port, users)
    return np.array(read) * 1000, rate


def one_check(kind: type[_Connection], port: int, user: int, model: str) -> bytes:
    """The body of one answer (to see what a check decides)."""
    connection = kind(port)
    connection.sock.setblocking(True)
    try:
        connection.sock.sendall(connection.request(user, model))
        time.sleep(0.05)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            data += connection.sock.recv(65536)
        return data.partition(b"\r\n\r\n")[2]
    finally:
        connection.sock.close()


@dataclass
class Side:
    """What one peer measured at one size."""

    load_s: list[float] = field(default_factory=list)
    load_bundle_s: list[float] = field(default_factory=list)  # OPA only
    rss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    checks: np.ndarray = field(default_factory=lambda: np.zeros(1))
    check_rate: float = 0.0
    changes_ms: list[float] = field(default_factory=list)
    lift_s: list[float] = field(default_factory=list)
    bundle_rss_mb: float = 0.0


# --- Countermand: directive -> three agents acked ----------------------------------------------------


def lift_messages(directive: str, sets: dict[str, BitMap]) -> list[tuple[bytes, bytes]]:
    """What impact publishes when the directive is lifted and no other covers its users: the restored sets."""
    return impact_messages(directive, sets, action="lift")[1]


def after_changes(users: BitMap, count: int) -> BitMap:
    """fable-5's set once bench.enforce.delta_runs made `count` changes (one added each, one removed every other)."""
    fable, fresh = BitMap(users), iter(range(POPULATION, POPULATION + 10 * count))
    for seq in range(1, count + 1):
        if seq % 2 == 0:
            fable.remove(fable.min())
        fable.add(next(fresh))
    return fable


def agent_port(pid: int) -> int:
    """The agent's access API port (it was started on port 0)."""
    ports = [c.laddr.port for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    if not ports:
        raise RuntimeError(f"agent {pid} listens on no port")
    return ports[0]


async def countermand(bench: Bench, sets: dict[int, BitMap]) -> dict[int, Side]:
    bootstrap = bench.kafka.bootstrap
    await apply_topics(KafkaSettings(bootstrap=bootstrap))
    sides: dict[int, Side] = {}
    async with AckWatch(bootstrap) as watch:
        async with services_ready(bench, watch, RUN / "state") as producer:
            pids = [bench.stack.processes[c].popen.pid for c in CLUSTERS]
            agent = pids[0]
            AgentCheck.key = bench.stack.gateway[API_KEY_HEADER]
            port = agent_port(agent)
            warm = affected_users(WARM_UP_USERS, seed=99)
            for size, users in [(0, warm), *sets.items()]:
                side = Side()
                for run in range(COUNTERMAND_RUNS if size else 2):
                    bench.stack.check_alive()
                    await asyncio.sleep(SETTLE_S)
                    before = rss_mb(agent)
                    directive = f"PEERS-{label_of(size)}-{run}-{uuid.uuid4().hex[:6]}"
                    digest, records = impact_messages(directive, users)
                    started = time.time()
                    await send_all(producer, IMPACT.name, records)
                    done, _ = await watch.until(lambda d=directive, g=digest: watch.all_acked(d, g), f"{directive}")
                    side.load_s.append(done - started)
                    held = {m: users for m in MODELS}
                    if size and run == 0:
                        await asyncio.sleep(SETTLE_S)
                        side.idle_rss_mb, side.rss_mb = before, max(rss_mb(pid) for pid in pids)
                        denied, allowed = one_check(AgentCheck, port, users.min(), "fable-5"), b""
                        allowed = one_check(AgentCheck, port, POPULATION - 1, "fable-5")
                        if b'"deny"' not in denied or b'"allow"' not in allowed:
                            raise RuntimeError(f"the agent's checks are not as held: {denied!r} {allowed!r}")
                        side.checks, side.check_rate = await asyncio.to_thread(
                            paced_checks, AgentCheck, port, check_users(users, seed=size)
                        )
                        side.changes_ms, _, _ = await delta_runs(watch, producer, directive, users, CHANGES)
                        held["fable-5"] = after_changes(users, CHANGES)
                    lifted = lift_messages(directive, held)
                    started = time.time()
                    await send_all(producer, IMPACT.name, lifted)
                    done, _ = await watch.until(
                        lambda d=directive: watch.all_acked(d, scope_digest({})), f"lift of {directive}"
                    )
                    side.lift_s.append(done - started)
                    print(
                        f"  countermand {label_of(size)} run {run}: {len(users):,} users x {len(MODELS)} models "
                        f"acked by 3 agents in {side.load_s[-1]:.3f} s, lifted in {side.lift_s[-1]:.3f} s"
                        f"{' (warm-up)' if not size else ''}",
                        flush=True,
                    )
                if size:
                    sides[size] = side
    return sides


# --- Open Policy Agent: three servers, the data API and a bundle -----------------------------------------


class OpaServer:
    """One `opa run --server` process on a free loopback port."""

    def __init__(self, binary: Path, name: str, *paths: str) -> None:
        self.port = free_port()
        RUN.mkdir(parents=True, exist_ok=True)
        self.log = RUN / f"{name}.log"
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen(
                [str(binary), "run", "--server", "--addr", f"127.0.0.1:{self.port}", "--log-level", "error", *paths],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.connection: http.client.HTTPConnection | None = None

    def healthy(self) -> bool:
        try:
            return self.call("GET", "/health") == 200
        except OSError:
            self.connection = None
            return False

    def call(self, method: str, path: str, body: bytes | None = None) -> int:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {"Content-Type": "application/json-patch+json" if method == "PATCH" else "application/json"}
        self.connection.request(method, path, body=body, headers=headers)
        answer = self.connection.getresponse()
        text = answer.read()
        if answer.status >= 300 and path != "/health":
            raise RuntimeError(f"OPA {method} {path}: {answer.status} {text[:200]!r}")
        return answer.status

    def stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.popen.terminate()
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def start_servers(binary: Path, *paths: str) -> tuple[list[OpaServer], float]:
    """Three servers; (them, seconds until all three answer /health)."""
    started = time.time()
    servers = [OpaServer(binary, f"opa-{i}", *paths) for i in range(3)]
    deadline = started + OPA_START_S
    waiting = list(servers)
    while waiting:
        for server in servers:
            if server.popen.poll() is not None:
                raise RuntimeError(f"opa exited: see {server.log}")
        waiting = [s for s in waiting if not s.healthy()]
        if time.time() > deadline:
            raise TimeoutError("OPA did not start")
        time.sleep(0.02)
    return servers, time.time() - started


def on_all(pool: ThreadPoolExecutor, servers: list[OpaServer], *calls: tuple[str, str, bytes | None]) -> float:
    """The calls, in order on each server, on all three at once; seconds until the last server answered."""
    started = time.time()
    futures = [pool.submit(lambda s=s: [s.call(*c) for c in calls]) for s in servers]
    for future in futures:
        future.result()
    return time.time() - started


def users_object(users: BitMap) -> bytes:
    """{"<id>": true, ...}: the deny set keyed by user id."""
    return b'{"' + '":true,"'.join(map(str, users.to_array().tolist())).encode() + b'":true}'


def write_bundle(path: Path, users: BitMap) -> None:
    """A bundle (tar.gz) with the policy and data.json {"denied": {model: {id: true}}}."""
    one = users_object(users)
    data = b'{"denied":{' + b",".join(b'"' + m.encode() + b'":' + one for m in MODELS) + b"}}"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, content in (("data.json", data), ("peers/deny.rego", REGO.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def opa(binary: Path, sets: dict[int, BitMap]) -> dict[int, Side]:
    sides: dict[int, Side] = {}
    with ThreadPoolExecutor(3) as pool:
        for size, users in sets.items():
            side = Side()
            body = users_object(users)
            puts = [("PUT", f"/v1/data/denied/{m}", body) for m in MODELS]
            for run in range(OPA_RUNS.get(size, 1)):
                servers, _ = start_servers(binary, str(REGO))
                try:
                    time.sleep(SETTLE_S)
                    before = rss_mb(servers[0].popen.pid)
                    side.load_s.append(on_all(pool, servers, *puts))
                    print(f"  opa {label_of(size)} data API run {run}: {side.load_s[-1]:.3f} s", flush=True)
                    if run:
                        continue
                    time.sleep(SETTLE_S)
                    side.idle_rss_mb, side.rss_mb = before, max(rss_mb(s.popen.pid) for s in servers)
                    port = servers[0].port
                    denied = one_check(OpaCheck, port, users.min(), "fable-5")
                    allowed = one_check(OpaCheck, port, POPULATION - 1, "fable-5")
                    if b"true" not in denied or b"false" not in allowed:
                        raise RuntimeError(f"OPA's checks are not as loaded: {denied!r} {allowed!r}")
                    side.checks, side.check_rate = paced_checks(OpaCheck, port, check_users(users, seed=size))
                    for seq in range(CHANGES):
                        patch = json.dumps([{"op": "add", "path": f"/{POPULATION + seq}", "value": True}]).encode()
                        side.changes_ms.append(
                            1000 * on_all(pool, servers, ("PATCH", "/v1/data/denied/fable-5", patch))
                        )
                    side.lift_s.append(on_all(pool, servers, ("DELETE", "/v1/data/denied", None)))
                    if b"false" not in one_check(OpaCheck, port, users.min(), "fable-5"):
                        raise RuntimeError("OPA still denies after the lift")
                finally:
                    for server in servers:
                        server.stop()
            bundle = RUN / f"bundle-{label_of(size)}.tar.gz"
            write_bundle(bundle, users)
            del body, puts
            for run in range(OPA_RUNS.get(size, 1)):
                servers, seconds = start_servers(binary, "--bundle", str(bundle))
                try:
                    side.load_bundle_s.append(seconds)
                    print(f"  opa {label_of(size)} bundle run {run}: {seconds:.3f} s", flush=True)
                    if not run:
                        time.sleep(SETTLE_S)
                        side.bundle_rss_mb = max(rss_mb(s.popen.pid) for s in servers)
                        if b"true" not in one_check(OpaCheck, servers[0].port, users.min(), "mythos-5"):
                            raise RuntimeError("OPA does not deny what the bundle holds")
                finally:
                    for server in servers:
                        server.stop()
            bundle.unlink()
            sides[size] = side
    return sides


# --- the table -------------------------------------------------------------------------------------------


def row(metric: str, value: float, unit: str, note: str, target: str = "") -> dict[str, Any]:
    return {"metric": metric, "value": round(value, 4), "unit": unit, "target": target, "note": note}


def rows_for(size: int, ours: Side, theirs: Side | None) -> list[dict[str, Any]]:
    label = label_of(size)
    med = float(np.median(ours.load_s))
    out = [
        row(
            f"peers_load_s_{label}_countermand",
            med,
            "s",
            f"median of {len(ours.load_s)}: the deny set ({size:,} users scattered over {POPULATION:,} ids) on "
            f"{len(MODELS)} models published as impact publishes it (ImpactAssessed + roaring chunks, signed) -> "
            f"enforcement -> the last of 3 agents' CommandApplied (applied and persisted); impact's evaluation not "
            f"in it (OPA gets the set ready-made too)",
        ),
    ]
    p50, p99 = (float(np.percentile(ours.checks, q)) for q in (50, 99))
    changes = np.array(ours.changes_ms)
    out += [
        row(
            f"peers_mb_{label}_countermand",
            ours.rss_mb,
            "MB",
            f"RSS of one agent process holding it, the larger of 3 after {SETTLE_S:.0f} s "
            f"({ours.idle_rss_mb:.0f} MB before the directive)",
        ),
        row(
            f"peers_check_p99_ms_{label}_countermand",
            p99,
            "ms",
            f"GET /v1/access on one agent at {ours.check_rate:,.0f} req/s for {HTTP_SECONDS} s, "
            f"{HTTP_CONNECTIONS} keep-alive connections (bench.agent's client); p50 {p50:.3f} ms",
        ),
        row(
            f"peers_change_p99_ms_{label}_countermand",
            percentile(ours.changes_ms, 99),
            "ms",
            f"{len(changes)} one-user changes one at a time: AffectedSetDelta published -> all 3 agents' "
            f"CommandApplied with the new digest; p50 {np.median(changes):.1f} ms",
        ),
        row(
            f"peers_lift_s_{label}_countermand",
            float(np.median(ours.lift_s)),
            "s",
            f"median of {len(ours.lift_s)}: the lift's assessment (restored sets in chunks, as impact publishes "
            f"it) -> the last of 3 agents' CommandApplied (lift)",
        ),
    ]
    if theirs is None:
        return out
    put, bundle = float(np.median(theirs.load_s)), float(np.median(theirs.load_bundle_s))
    opa_load, path = min((put, "data API"), (bundle, "bundle"))
    o50, o99 = (float(np.percentile(theirs.checks, q)) for q in (50, 99))
    opa_changes = np.array(theirs.changes_ms)
    opa_mb = min(theirs.rss_mb, theirs.bundle_rss_mb) if theirs.bundle_rss_mb else theirs.rss_mb
    figures = [
        (
            "load_s",
            "s",
            med,
            opa_load,
            f"the faster of the two paths ({path}): data API {put:.2f} s, bundle {bundle:.2f} s",
        ),
        ("mb", "MB", ours.rss_mb, opa_mb, "the smaller of the two paths' RSS"),
        ("check_p50_ms", "ms", p50, o50, ""),
        ("check_p99_ms", "ms", p99, o99, ""),
        ("change_p99_ms", "ms", percentile(ours.changes_ms, 99), percentile(theirs.changes_ms, 99), ""),
        ("lift_s", "s", float(np.median(ours.lift_s)), float(np.median(theirs.lift_s)), ""),
    ]
    out += [
        row(
            f"peers_load_s_{label}_opa_data_api",
            put,
            "s",
            f'median of {len(theirs.load_s)}: PUT /v1/data/denied/<model> of {{"<id>": true}} ({size:,} keys) for '
            f"each of {len(MODELS)} models, on 3 fresh OPA servers at once -> the last server's 204",
        ),
        row(
            f"peers_load_s_{label}_opa_bundle",
            bundle,
            "s",
            f"median of {len(theirs.load_bundle_s)}: 3 OPA servers started with --bundle (tar.gz: policy + "
            f"data.json of both models) -> the last one's /health 200; includes process start",
        ),
        row(
            f"peers_mb_{label}_opa",
            opa_mb,
            "MB",
            f"RSS of one OPA server holding it, the larger of 3 after {SETTLE_S:.0f} s: data API "
            f"{theirs.rss_mb:.0f} MB ({theirs.idle_rss_mb:.0f} MB before), bundle {theirs.bundle_rss_mb:.0f} MB",
        ),
        row(
            f"peers_check_p99_ms_{label}_opa",
            o99,
            "ms",
            f"POST /v1/data/peers/deny {{input: user, model}} on one server at {theirs.check_rate:,.0f} req/s, "
            f"the same client, users and pacing; p50 {o50:.3f} ms",
        ),
        row(
            f"peers_change_p99_ms_{label}_opa",
            percentile(theirs.changes_ms, 99),
            "ms",
            f"{len(opa_changes)} JSON Patch adds of one user (PATCH /v1/data/denied/fable-5) on the 3 servers at "
            f"once -> the last 204; p50 {np.median(opa_changes):.2f} ms",
        ),
        row(
            f"peers_lift_s_{label}_opa",
            float(np.median(theirs.lift_s)),
            "s",
            "DELETE /v1/data/denied on the 3 servers at once -> the last 204",
        ),
    ]
    for name, unit, mine, other, note in figures:
        ratio = other / mine if mine else float("nan")
        ahead = "Countermand ahead" if ratio >= 1 else f"OPA ahead: {WHY_NOT[name]}"
        out.append(
            row(
                f"peers_{name}_ratio_{label}",
                ratio,
                "x",
                f"OPA / Countermand ({other:.4g} / {mine:.4g} {unit}); {ahead}{'; ' + note if note else ''}",
                ">= 1",
            )
        )
    return out


WHY_NOT = {
    "load_s": "OPA's PUT is one in-memory write per server, nothing durable; Countermand's set goes through Kafka "
    "(signed, replicated log), is verified, persisted by each agent, and acked back",
    "mb": "the agent is a Python process (interpreter, Kafka client, HTTP server)",
    "check_p50_ms": "a Python agent against Go, on a busy 2-core machine",
    "check_p99_ms": "a Python agent against Go, on a busy 2-core machine: the tail is the machine's (both within "
    "run-to-run noise of each other)",
    "change_p99_ms": "OPA answers when its in-memory store changed on the server the client spoke to: no log, no "
    "signature, no persistence, no ack; Countermand's change is a signed Kafka record each agent applies, persists "
    "and acks",
    "lift_s": "the lift's assessment carries the restored sets (what notices are sent for) through Kafka and every "
    "agent acks; OPA drops one in-memory document",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--opa", type=Path, help="the opa binary (make peers-opa builds it)")
    parser.add_argument("--users", default=",".join(map(str, SIZES)), help="deny-set sizes, comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.users.split(",")]
    sets = {size: affected_users(size, seed=size) for size in sizes}
    binary = args.opa if args.opa and args.opa.is_file() else None
    if binary is None:
        print("bench.peers: no opa binary (Go absent or `make peers-opa` not run): Countermand's side only", flush=True)
    else:
        print(subprocess.run([str(binary), "version"], capture_output=True, text=True).stdout.splitlines()[0])
    load = psutil.getloadavg()
    with Bench() as bench:
        ours = asyncio.run(countermand(bench, sets))
    theirs = opa(binary, sets) if binary else {}
    rows = [r for size in sizes for r in rows_for(size, ours[size], theirs.get(size))]
    for r in rows:
        if r["metric"].startswith("peers_load_s_") and r["metric"].endswith("_countermand"):
            r["note"] += f"; load average at start {load[0]:.1f} (2 cores, shared)"
    publish("peers", rows, f"Countermand and Open Policy Agent {OPA_VERSION}, side by side")


if __name__ == "__main__":
    main()
