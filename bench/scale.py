"""The per-unit costs behind the scale model (docs/scaling.md), measured here, and the model's extrapolation.

One process, no broker: the same functions the services run, on a dense set (10M of a registry's
consecutive ids, 68% of them affected, as the mission directive leaves them) and a sparse one (10M ids
scattered over a 100M-id space):
- bytes per affected user: portable roaring, base64 in JSON (today's wire), zstd and lz4 (Kafka's codecs,
  through cramjam as aiokafka uses it) with their compress/decompress time;
- CPU per million affected ids at each stage: chunking, encoding, signing the encoded command, verifying it,
  decoding it at the agent, the set digest;
- the model: the measured costs, plus evaluation time and memory per user from bench/results/impact.json and
  the agent's memory per held id from bench/results/agent.json, scaled to 1B users, 200 clusters and 1,000
  directives (see docs/scaling.md for what is assumed).
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import cramjam
import numpy as np
from pyroaring import BitMap

from bench.report import RESULTS, publish
from shared.contracts.bitmaps import chunk_bitmap, decode_bitmap, encode_bitmap, set_digest
from shared.runtime.signing import KeySet, Signer

IDS = 10_000_000
DENSE_SPACE = 14_700_000  # the enforcement benchmark's 10M registry: 68% of its ids affected
SPARSE_SPACE = 100_000_000
REPEATS = 3
MILLION = 1_000_000

# The model's sizes (docs/scaling.md)
USERS_1B = 1_000_000_000
CLUSTERS = 200
DIRECTIVES = 1_000
AFFECTED_SHARE = 0.5  # a directive as broad as the mission: about half of the users covered
MODELS_PER_DIRECTIVE = 2


def best_of(work: Callable[[], object]) -> float:
    """The fastest of REPEATS runs, in seconds (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def sets() -> dict[str, BitMap]:
    rng = np.random.default_rng(7)
    dense = np.sort(rng.choice(DENSE_SPACE, IDS, replace=False)).astype(np.uint32)
    sparse = np.sort(rng.choice(SPARSE_SPACE, IDS, replace=False)).astype(np.uint32)
    return {"dense": BitMap(dense), "sparse": BitMap(sparse)}


def measure_set(name: str, users: BitMap, signer: Signer, keys: KeySet) -> dict[str, float]:
    """Per-unit costs of one set; times in ms per million ids, sizes in bytes per id."""
    per_m = MILLION / len(users)
    portable = BitMap(users)
    portable.run_optimize()
    raw = portable.serialize()
    chunks = chunk_bitmap(users)
    texts = [encode_bitmap(c) for c in chunks]
    values = [json.dumps({"type": "RestrictCommand", "users": t}).encode() for t in texts]
    headers = [signer.headers("serving.commands.v1", b"c", v) for v in values]
    zstd = bytes(cramjam.zstd.compress(raw, level=1))
    lz4 = bytes(cramjam.lz4.compress_block(raw))
    b64 = base64.b64encode(raw)
    zstd_b64 = bytes(cramjam.zstd.compress(b64, level=1))
    figures = {
        "roaring_bytes_per_id": len(raw) / len(users),
        "json_bytes_per_id": sum(len(v) for v in values) / len(users),
        "zstd_bytes_per_id": len(zstd) / len(users),
        "lz4_bytes_per_id": len(lz4) / len(users),
        "zstd_of_base64_bytes_per_id": len(zstd_b64) / len(users),
        "chunk_ms_per_m": best_of(lambda: chunk_bitmap(users)) * 1e3 * per_m,
        "encode_ms_per_m": best_of(lambda: [encode_bitmap(c) for c in chunks]) * 1e3 * per_m,
        "sign_ms_per_m": best_of(lambda: [signer.headers("serving.commands.v1", b"c", v) for v in values])
        * 1e3
        * per_m,
        "verify_ms_per_m": best_of(
            lambda: [keys.verify("serving.commands.v1", b"c", v, h) for v, h in zip(values, headers, strict=True)]
        )
        * 1e3
        * per_m,
        "decode_ms_per_m": best_of(lambda: BitMap.union(BitMap(), *[decode_bitmap(t) for t in texts])) * 1e3 * per_m,
        "digest_ms_per_m": best_of(lambda: set_digest(users)) * 1e3 * per_m,
        "zstd_compress_ms_per_m": best_of(lambda: cramjam.zstd.compress(raw, level=1)) * 1e3 * per_m,
        "zstd_decompress_ms_per_m": best_of(lambda: cramjam.zstd.decompress(zstd)) * 1e3 * per_m,
        "lz4_compress_ms_per_m": best_of(lambda: cramjam.lz4.compress_block(raw)) * 1e3 * per_m,
        "lz4_decompress_ms_per_m": best_of(lambda: cramjam.lz4.decompress_block(lz4)) * 1e3 * per_m,
    }
    print(f"  {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in figures.items()), flush=True)
    return figures


def recorded(name: str) -> dict[str, dict[str, Any]]:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make bench-impact` and `make bench-enforce` first")
    return {r["metric"]: r for r in json.loads(path.read_text())["results"]}


def model(costs: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The extrapolation: one directive as broad as the mission over 1B users, sent to 200 clusters; 1,000
    directives held. Dense ids are the registry's case (ids are assigned consecutively)."""
    impact, agent = recorded("impact"), recorded("agent")
    dense = costs["dense"]
    affected = USERS_1B * AFFECTED_SHARE
    per_model_mb = affected * dense["roaring_bytes_per_id"] / 2**20
    wire_mb = affected * dense["json_bytes_per_id"] / 2**20 * MODELS_PER_DIRECTIVE
    eval_s_1b = impact["eval_s_100M_mission"]["value"] * USERS_1B / 100_000_000
    impact_gb_1b = impact["peak_rss_mb_100M"]["value"] * USERS_1B / 100_000_000 / 1024
    held_mb_per_id = agent["agent_mb_100M"]["value"] / 50_000_000  # 50M random ids of 0..100M held
    agent_gb = held_mb_per_id * affected * MODELS_PER_DIRECTIVE * DIRECTIVES / 1024
    per_directive_cpu_s = affected * MODELS_PER_DIRECTIVE / MILLION * dense["sign_ms_per_m"] / 1e3
    return [
        row(
            "model_eval_s_1B",
            eval_s_1b,
            "s",
            "impact's evaluation of one directive over 1B users, linear from eval_s_100M_mission",
        ),
        row(
            "model_impact_rss_gb_1B", impact_gb_1b, "GB", "impact's user view at 1B users, linear from peak_rss_mb_100M"
        ),
        row(
            "model_set_mb_per_model_1B",
            per_model_mb,
            "MB",
            "one model's affected set (500M dense ids) as roaring bytes",
        ),
        row(
            "model_broker_gb_per_directive_200_clusters_copies",
            wire_mb * (1 + CLUSTERS) / 1024,
            "GB",
            "today's wire: the assessment's chunks once plus a base64-in-JSON copy per cluster, 2 models",
        ),
        row(
            "model_broker_gb_per_directive_one_copy",
            per_model_mb * MODELS_PER_DIRECTIVE / 1024,
            "GB",
            "one binary copy per revision read by every cluster (commands reference it)",
        ),
        row(
            "model_enforcement_sign_cpu_s_per_directive_200_clusters",
            per_directive_cpu_s * CLUSTERS,
            "s",
            "enforcement signing a per-cluster copy of each command (SHA-256 of the value, then Ed25519)",
        ),
        row(
            "model_agent_gb_1000_directives",
            agent_gb,
            "GB",
            "one agent holding 1,000 directives each as broad as the mission over 1B users (the worst case: "
            "sets held separately per directive)",
        ),
    ]


def row(metric: str, value: float, unit: str, note: str) -> dict[str, Any]:
    return {"metric": metric, "value": round(value, 4 if value < 10 else 1), "unit": unit, "target": "", "note": note}


def main() -> None:
    signer = Signer.generate("bench-scale")
    keys = KeySet([signer.public()])
    costs = {name: measure_set(name, users, signer, keys) for name, users in sets().items()}
    rows = [
        row(f"{name}_{metric}", value, "B" if metric.endswith("per_id") else "ms", f"{name} set, 10M ids")
        for name, figures in costs.items()
        for metric, value in figures.items()
    ]
    ratio = statistics.fmean(costs[n]["json_bytes_per_id"] / costs[n]["zstd_bytes_per_id"] for n in costs)
    rows.append(
        row("wire_to_zstd_ratio", ratio, "x", "base64-in-JSON bytes / zstd(roaring) bytes, mean of dense and sparse")
    )
    rows.extend(model(costs))
    publish("scale", rows, "Per-unit costs and the scale model (docs/scaling.md)")


if __name__ == "__main__":
    main()
