"""Benchmark `countermand registry import`: 10M users from a Parquet file into Kafka, end to end.

`python -m bench.imports` (also run by `make bench-impact`) writes bench/results/imports.json:
- import_rows_per_s_10M: a 10M-row Parquet file (made once, cached under .run/bench-imports) imported by the
  `countermand registry import` command as a subprocess (read, validate, encode, produce with acks=all, every
  record acknowledged), on its own broker (data under .run/bench-kafka-imports, free ports); rows divided by
  the command's wall time. The records on the topic are counted afterwards. The CPU time of the import's
  processes is in the note: on a shared machine it says more about the code than the wall time does.
The broker is stopped in `finally`. The machine's load when measured is in the results file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq

from bench.report import publish
from devtools.broker import LocalBroker
from shared.contracts.catalogue import USERS
from shared.runtime.kafka import end_offsets
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / ".run" / "bench-imports"
KAFKA_DATA = ROOT / ".run" / "bench-kafka-imports"
ROWS = 10_000_000
SEED = 2026
NATIONALITIES = [
    ["US"],
    ["US"],
    ["US"],
    ["IN"],
    ["CN"],
    ["GB"],
    ["DE"],
    ["US", "IE"],
    ["MX", "US"],
    ["BY"],
    ["KP"],
    ["VE", "ES"],
    None,
    [],
]
RESIDENCES = ["US", "US", "US", "IN", "CN", "GB", "DE", "FR", "CU", "SY", None]
ACCOUNTS = ["consumer", "consumer", "consumer", "enterprise_member", "employee"]
ENTITLEMENTS = [[], ["fable-5"], ["fable-5", "mythos-5"], ["mythos-5", "saga-3"]]
LOCALES = ["en", "en", "de", "fr", "es", "zh"]


def users_file(rows: int = ROWS) -> Path:
    """The benchmark's Parquet file of `rows` users (made once, then reused)."""
    path = RUN / f"users-{rows // 1_000_000}M.parquet"
    if path.exists():
        return path
    RUN.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    ids = np.arange(1, rows + 1, dtype=np.int64)

    def pick(choices: list, kind: pa.DataType) -> pa.Array:
        return pa.array(choices, kind).take(pa.array(rng.integers(0, len(choices), rows)))

    nationalities = pick(NATIONALITIES, pa.list_(pa.string()))
    stateless = pc_equal_empty(nationalities)
    table = pa.table(
        {
            "user_id": ids,
            "email": pa.compute.binary_join_element_wise("user", pa.array(ids).cast(pa.string()), "@example.com", ""),
            "nationalities": nationalities,
            "residence": pick(RESIDENCES, pa.string()),
            "account_type": pick(ACCOUNTS, pa.string()),
            "organisation": pa.compute.if_else(
                pa.array(rng.random(rows) < 0.3),
                pa.compute.binary_join_element_wise(
                    "org-", pa.array(rng.integers(0, 5000, rows)).cast(pa.string()), ""
                ),
                pa.scalar(None, pa.string()),
            ),
            "entitlements": pick(ENTITLEMENTS, pa.list_(pa.string())),
            "locale": pick(LOCALES, pa.string()),
            "stateless": stateless,
        }
    )
    pq.write_table(table, path.with_suffix(".tmp"), row_group_size=1_000_000)
    path.with_suffix(".tmp").rename(path)
    return path


def pc_equal_empty(lists: pa.Array) -> pa.Array:
    """Stateless where the list is empty: 'holds none' must be said explicitly."""
    return pa.compute.fill_null(pa.compute.equal(pa.compute.list_value_length(lists), 0), False)


def import_rate(rows: int = ROWS) -> dict[str, Any]:
    path = users_file(rows)
    with LocalBroker(KAFKA_DATA) as kafka:
        kafka.access.export()  # this process and the import it starts log in as tooling
        settings = KafkaSettings(bootstrap=kafka.bootstrap)
        asyncio.run(apply_topics(settings, (USERS,)))
        command = [sys.executable, "-m", "cli.main", "registry", "import", str(path), "--bootstrap", kafka.bootstrap]
        started, cpu = time.perf_counter(), os.times()
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        used = os.times()
        cpu_s = used.children_user - cpu.children_user + used.children_system - cpu.children_system
        if done.returncode != 0:
            raise RuntimeError(f"import exited {done.returncode}: {done.stderr[-500:]}")
        on_topic = sum(asyncio.run(end_offsets(settings, USERS, "bench-imports")).values())
    print(done.stdout.strip(), flush=True)
    return {
        "metric": f"import_rows_per_s_{rows // 1_000_000}M",
        "value": round(rows / seconds),
        "unit": "rows/s",
        "target": ">= 200000",
        "note": f"{rows:,} Parquet rows in {seconds:.1f} s (process start to exit; {cpu_s:.1f} s of CPU in the "
        f"import's processes, the broker's excluded), {on_topic:,} records on {USERS.name}",
    }


def main() -> None:
    print("registry import of 10M users ...", flush=True)
    try:
        row = import_rate()
    except Exception as exc:  # a benchmark reports what it could not measure instead of stopping
        print(f"  failed: {exc!r}", flush=True)
        row = {
            "metric": "import_rows_per_s_10M",
            "value": "not measured",
            "unit": "rows/s",
            "target": ">= 200000",
            "note": f"failed: {type(exc).__name__}: {exc}"[:300],
        }
    publish("imports", [row], "Registry import")


if __name__ == "__main__":
    if sys.argv[1:2] == ["rows"]:  # a smaller run, printed: python -m bench.imports rows 1000000
        print(import_rate(int(sys.argv[2])))
    else:
        main()
