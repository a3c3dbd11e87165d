"""Benchmark the smallest changes at an agent holding 1M, 10M and 50M users of one directive (two models):
a one-user delta applied until the access check answers the new way, and a lift, in memory and on disk.

Run: .venv/bin/python -m bench.agent_delta   (writes bench/results/agent_delta.json; bench.agent includes it)
"""

from __future__ import annotations

import array
import gc
import hashlib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap

from bench.report import publish
from services.agent.access import AccessChecker
from services.agent.command_effects import Outcome, on_command
from services.agent.holding import Holding
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import HeldRestriction, Window
from services.impact.affected import mask_ranges
from services.impact.selection import BLOCK, blockwise
from shared.contracts.bitmaps import SetDigest, bitmap_ids, encode_bitmap, id_blocks, set_digest
from shared.contracts.serving import DeltaCommand, LiftCommand

NOW = datetime.now(UTC)
SIZES = {"1M": 1_000_000, "10M": 10_000_000, "50M": 50_000_000}
DENSITY = 4  # held users are a quarter of an id space four times their number
DELTAS = 400  # one-user deltas per size (past the delta log's compaction bound of 256 rows)
LIFTS = 5
MODELS = ("fable-5", "mythos-5")
CLUSTER = "bench"


def held_users(size: int, seed: int) -> BitMap:
    """About `size` random users of 0..DENSITY*size."""
    rng = np.random.default_rng(seed)
    ids = np.flatnonzero(rng.integers(0, DENSITY, DENSITY * size, dtype=np.uint8) == 0).astype(np.uint32)
    return BitMap(array.array("I", ids.tobytes()))


def holding_of(folder: Path, users: BitMap, directive: str = "D1") -> Holding:
    """An agent's holding with the directive applied and folded on disk, as after a restart."""
    store = RestrictionStore(folder / "agent.sqlite3")
    holding = Holding(store, AccessChecker(stale_after=timedelta(days=1)))
    sets = {MODELS[0]: users, MODELS[1]: BitMap(users)}
    holding.state.held[directive] = HeldRestriction.of(1, Window(), sets)
    written = Outcome(held_changed=True, touched=True)
    holding.show(written)
    holding.persist(directive, written, 0, 0)
    holding.checker.mark_ready(NOW)
    return holding


def _delta(seq: int, user: int, add: bool) -> bytes:
    one, none = encode_bitmap(BitMap([user])), encode_bitmap(BitMap())
    return (
        DeltaCommand(
            producer="bench",
            cluster_id=CLUSTER,
            directive_id="D1",
            revision=1,
            seq=seq,
            model=MODELS[0],
            added=one if add else none,
            removed=none if add else one,
        )
        .model_dump_json()
        .encode()
    )


def apply(holding: Holding, record: bytes, kind: type, offset: int) -> tuple[float, float]:
    """One command through the agent's handling (parse, rule, memory, store); seconds until the change is
    visible to checks and until it is durable."""
    started = time.perf_counter()
    command = kind.model_validate_json(record)
    outcome = on_command(holding.state, command, CLUSTER, NOW)
    holding.show(outcome)  # as CommandHandling.on_command: seen by checks, then made durable, then acknowledged
    visible = time.perf_counter()
    holding.persist(command.directive_id, outcome, 0, offset)
    return visible - started, time.perf_counter() - started


def one_user_deltas(holding: Holding, users: BitMap) -> tuple[list[float], list[float]]:
    """Alternately add a user outside the set and remove it again, checking each change is seen."""
    at, outside = NOW.timestamp(), int(users.max()) + 1 if users else 0
    rng = np.random.default_rng(3)
    candidates = [int(u) for u in rng.integers(0, outside, 4 * DELTAS) if int(u) not in users]
    visible, durable = [], []
    for seq in range(1, DELTAS + 1):
        user, add = candidates[(seq - 1) // 2], seq % 2 == 1
        record = _delta(seq, user, add)
        seen, done = apply(holding, record, DeltaCommand, seq)
        if holding.checker.denies(user, MODELS[0], at) != add:
            raise RuntimeError(f"delta {seq} is not visible to checks")
        visible.append(seen)
        durable.append(done)
    return visible, durable


def lifts(folder: Path, users: BitMap) -> tuple[list[float], list[float]]:
    """Lift the directive (one denied user checked allowed after), on a fresh holding each time."""
    visible, durable = [], []
    user, at = int(users.min()), NOW.timestamp()
    for i in range(LIFTS):
        holding = holding_of(folder / f"lift-{i}", users)
        holding.checker.denies(user, MODELS[0], at)  # the check view is built
        record = LiftCommand(producer="bench", cluster_id=CLUSTER, directive_id="D1", revision=1)
        seen, done = apply(holding, record.model_dump_json().encode(), LiftCommand, 1)
        if holding.checker.denies(user, MODELS[0], at):
            raise RuntimeError("the lift is not visible to checks")
        visible.append(seen)
        durable.append(done)
        holding.store.close()
    return visible, durable


def previous_digest(users: BitMap) -> str:
    """The set digest as defined before ranges: SHA-256 over every id ascending as little-endian uint32, read
    in the same blocks of ids (kept here only to compare its cost)."""
    digest = hashlib.sha256()
    for block in id_blocks(users):
        digest.update(block.astype("<u4", copy=False))
    return digest.hexdigest()


def previous_rows_digest(mask: np.ndarray) -> str:
    """Impact's mask variant of the previous definition: row numbers hashed block by block as uint32."""
    digest = hashlib.sha256()
    for start in range(0, len(mask), 1 << 20):
        ids = np.flatnonzero(mask[start : start + (1 << 20)]).astype("<u4")
        ids += np.uint32(start)
        digest.update(ids)
    return digest.hexdigest()


def mask_pass_digest(mask: np.ndarray) -> str:
    """What impact's evaluation does for the digest now: each block's ranges (container and range digest, one
    listing of its rows; `assess` on its threads) and the set digest combined from them."""
    ranges = blockwise(len(mask), lambda start: mask_ranges(mask[start : start + BLOCK], start))
    return SetDigest.from_ranges({k: d for r in ranges for k, d in zip(r.keys, r.digests, strict=True)}).hexdigest()


def _cpu_pair(first: Any, second: Any, arg: Any, rounds: int = 9) -> tuple[float, float]:
    """Least CPU time of each of two computations over rounds run alternately (a shared machine's load
    slows both alike; CPU time does not count the waits)."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, run in enumerate((first, second)):
            started = time.process_time()
            run(arg)
            best[i] = min(best[i], time.process_time() - started)
    return best[0], best[1]


def digest_costs(users: BitMap) -> list[dict[str, Any]]:
    """The per-range digest from scratch against the previous definition, in one run, alternately."""
    mask = np.zeros(users.max() + 1, bool)
    mask[bitmap_ids(users)] = True
    ours, before = _cpu_pair(set_digest, previous_digest, users)
    ours_mask, before_mask = _cpu_pair(mask_pass_digest, previous_rows_digest, mask)
    common = f"{len(users):,} users of 0..{len(mask):,}; least CPU time of 9 runs alternating with the previous"
    return [
        {
            "metric": "digest_ms_10M",
            "value": round(ours * 1000, 1),
            "unit": "ms",
            "target": f"<= {before * 1000:.1f}",
            "note": f"set_digest from scratch (range digests combined), {common}; previous definition (one SHA-256 "
            f"over the uint32 ids) {before * 1000:.1f} ms in the same run: ratio {ours / before:.2f}",
        },
        {
            "metric": "digest_mask_ms_10M",
            "value": round(ours_mask * 1000, 1),
            "unit": "ms",
            # The pass also builds each range's container (the set itself), which the previous definition did not:
            # it is held to within 10% of that digest-only pass, the margin every figure keeps across a restructuring.
            "target": f"<= {before_mask * 1.1 * 1000:.1f}",
            "note": f"impact's per-block pass over the boolean mask (mask_ranges on its threads: each range's "
            f"container and range digest; then the set digest combined), CPU time of both threads, {common}; previous "
            f"definition from the same mask (digest only, no containers) {before_mask * 1000:.1f} ms in the same "
            f"run: ratio {ours_mask / before_mask:.2f} (target: within 10% of it)",
        },
    ]


def _ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1000, 3)


def measure() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, size in SIZES.items():
        users = held_users(size, seed=size)
        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1] / ".run") as tmp:
            folder = Path(tmp)
            holding = holding_of(folder / "deltas", users)
            holding.checker.denies(0, MODELS[0], NOW.timestamp())
            gc.collect()
            visible, durable = one_user_deltas(holding, BitMap(users))
            holding.store.close()
            rows += [
                {
                    "metric": f"agent_delta_p50_ms_{label}",
                    "value": _ms(visible, 50),
                    "unit": "ms",
                    "target": "<= 1" if label == "10M" else "<= 2",
                    "note": f"one-user DeltaCommand (JSON parsed, rule applied) until AccessChecker.denies answers the "
                    f"new way, agent holding {len(users):,} users x 2 models of one directive; p99 "
                    f"{_ms(visible, 99)} ms; {DELTAS} deltas alternately adding and removing one user",
                },
                {
                    "metric": f"agent_delta_durable_p50_ms_{label}",
                    "value": _ms(durable, 50),
                    "unit": "ms",
                    "target": "",
                    "note": f"same deltas until their SQLite transaction is synced (what the ack waits for); p99 "
                    f"{_ms(durable, 99)} ms, max {_ms(durable, 100)} ms (a compaction of the delta log)",
                },
            ]
            if label == "10M":
                rows += digest_costs(users)
                seen, done = lifts(folder, users)
                rows += [
                    {
                        "metric": "agent_lift_visible_ms_10M",
                        "value": _ms(seen, 50),
                        "unit": "ms",
                        "target": "<= 1",
                        "note": f"LiftCommand until a denied user is allowed by AccessChecker.denies; median of "
                        f"{LIFTS}",
                    },
                    {
                        "metric": "agent_lift_durable_ms_10M",
                        "value": _ms(done, 50),
                        "unit": "ms",
                        "target": "<= 10",
                        "note": f"same lifts until their SQLite transaction is synced; median of {LIFTS}",
                    },
                ]
        del users
        gc.collect()
    return rows


if __name__ == "__main__":
    publish("agent_delta", measure(), "Agent: one-user delta and lift at 1M / 10M / 50M held")
