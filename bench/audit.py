"""Benchmark the audit's answers over a million-user directive, in process (no broker).

`python -m bench.audit` (or `make bench-audit`) measures, and writes bench/results/audit.json:
- replay_events_per_s: records (as bytes, in batches as a consumer hands them over) folded into the audit's Evidence:
  notices requested and delivered for every affected user, acks, heartbeats, commands, the assessment and
  its chunks. Reading them off Kafka is not included (the broker's and aiokafka's share is not the audit's).
- report_s_1M: fold plus report plus HTML for a directive with 1M affected users, notices included.
- explain_ms: p99 of `GET /v1/explain` as an auditor calls it (JWT checked, uvicorn on loopback, the audit's
  HTTP API answering from its ledger) for random users, over a ledger of >= 1M entries (registry records and
  notices of every user of a directive).
- verify_events_per_s: a ledger of generated entries checked end to end (chain, Merkle root, a signed head).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import uvicorn
from pyroaring import BitMap

from bench.report import publish
from devtools.ports import free_port
from services.audit.api import create_api
from services.audit.batch_fold import fold
from services.audit.evidence import Evidence
from services.audit.forgery import Signatures
from services.audit.html import render_html
from services.audit.ledger import Ledger
from services.audit.proofs import check_ledger
from services.audit.record import Record
from services.audit.report import build_report
from services.audit.treehead import sign_head
from shared.contracts.bitmaps import CHUNK_IDS, chunk_bitmap, encode_bitmap, sets_digest
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role
from shared.runtime.signing import KeySet, Signer

USERS = int(os.environ.get("BENCH_AUDIT_USERS", 1_000_000))
LEDGER_ENTRIES = int(os.environ.get("BENCH_AUDIT_LEDGER", 200_000))
EXPLAIN_USERS = int(os.environ.get("BENCH_AUDIT_EXPLAIN_USERS", 400_000))  # x3 entries: registry, 2 notices
EXPLAIN_CALLS = 300
FETCH = 4000  # records per batch: about what one fetch hands over per partition (1 MiB of ~250-byte notices)
T0 = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
DIRECTIVE = "EXP-BENCH"
CLUSTERS = ("us-east", "eu-west", "ap-south")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(T0.timestamp() + seconds, UTC).isoformat()


def records(users: int) -> list[tuple[str, int, int, bytes | None, bytes | None, int]]:
    """A directive's records with `users` affected users, each requested and delivered a notice."""
    affected = BitMap(range(1, users + 1))
    digest = sets_digest({"fable-5": affected})
    env = {"correlation_id": DIRECTIVE, "producer": "bench", "schema_version": 1}
    scope = {"models": ["fable-5"], "selector": {"kind": "everyone"}, "unknown_attribute": "restrict"}
    out = [
        (
            "compliance.directives.v1",
            0,
            0,
            b"k",
            orjson.dumps(
                {
                    "type": "DirectiveIssued",
                    "occurred_at": _iso(0),
                    "directive_id": DIRECTIVE,
                    "revision": 1,
                    "title": "bench",
                    "scope": scope,
                    **env,
                }
            ),
            0,
        )
    ]
    chunks = chunk_bitmap(affected, CHUNK_IDS)
    out.append(
        (
            "compliance.impact.v1",
            0,
            1,
            b"k",
            orjson.dumps(
                {
                    "type": "ImpactAssessed",
                    "occurred_at": _iso(1),
                    "directive_id": DIRECTIVE,
                    "revision": 1,
                    "action": "restrict",
                    "scope": scope,
                    "affected_by_model": {"fable-5": users},
                    "affected_users": users,
                    "by_country": {"FR": users},
                    "by_account_type": {"consumer": users},
                    "model_digests": {"fable-5": digest},
                    "digest": digest,
                    "registry_offsets": {"0": users},
                    "chunks": len(chunks),
                    **env,
                }
            ),
            0,
        )
    )
    for n, chunk in enumerate(chunks):
        out.append(
            (
                "compliance.impact.v1",
                0,
                2 + n,
                b"k",
                orjson.dumps(
                    {
                        "type": "AffectedSetChunk",
                        "occurred_at": _iso(1),
                        "directive_id": DIRECTIVE,
                        "revision": 1,
                        "action": "restrict",
                        "model": "fable-5",
                        "chunk": n,
                        "chunks": len(chunks),
                        "users": encode_bitmap(chunk),
                        **env,
                    }
                ),
                0,
            )
        )
    states = {}
    for c in CLUSTERS:
        out.append(
            (
                "serving.acks.v1",
                0,
                len(out),
                c.encode(),
                orjson.dumps(
                    {
                        "type": "AgentHeartbeat",
                        "occurred_at": _iso(0),
                        "cluster_id": c,
                        "models": ["fable-5"],
                        "ready": True,
                        **env,
                    }
                ),
                0,
            )
        )
        out.append(
            (
                "serving.acks.v1",
                0,
                len(out),
                c.encode(),
                orjson.dumps(
                    {
                        "type": "CommandApplied",
                        "occurred_at": _iso(5),
                        "cluster_id": c,
                        "directive_id": DIRECTIVE,
                        "revision": 1,
                        "action": "restrict",
                        "digest": digest,
                        **env,
                    }
                ),
                0,
            )
        )
        states[c] = {"state": "applied", "acked_at": _iso(5), "digest": digest, "expected_digest": digest}
    for kind in ("EnforcementProgressed", "DirectiveEnforced"):
        out.append(
            (
                "compliance.enforcement.v1",
                0,
                len(out),
                b"k",
                orjson.dumps(
                    {
                        "type": kind,
                        "occurred_at": _iso(6),
                        "directive_id": DIRECTIVE,
                        "revision": 1,
                        "action": "restrict",
                        "expected_digest": digest,
                        "digest": digest,
                        "clusters": states,
                        "deadline": _iso(300),
                        "ack_latency_s": {},
                        **env,
                    }
                ),
                0,
            )
        )
    for user in range(1, users + 1):
        notice = {
            "notification_id": f"{DIRECTIVE}:1:restricted:{user}",
            "recipient": user,
            "directive_id": DIRECTIVE,
            "revision": 1,
            "action": "restricted",
            **env,
        }
        key = str(user).encode()
        out.append(
            (
                "notifications.v1",
                user % 6,
                user,
                key,
                orjson.dumps(
                    {
                        "type": "NotificationRequested",
                        "occurred_at": _iso(7),
                        "email": "x@example.com",
                        "models": ["fable-5"],
                        **notice,
                    }
                ),
                0,
            )
        )
        out.append(
            (
                "notifications.v1",
                user % 6,
                users + user,
                key,
                orjson.dumps({"type": "NotificationDelivered", "occurred_at": _iso(8), **notice}),
                0,
            )
        )
    return out


def fold_all(stream: list) -> Evidence:
    """The records folded as the report's reader folds each batch the consumer hands over."""
    evidence = Evidence()
    for start in range(0, len(stream), FETCH):
        fold(evidence, stream[start : start + FETCH])
    return evidence


def measure_replay_and_report(users: int) -> tuple[float, float, int]:
    stream = records(users)
    started = time.perf_counter()
    evidence = fold_all(stream)
    folded = time.perf_counter() - started
    report = build_report(evidence, DIRECTIVE, datetime.now(UTC))
    render_html(report)
    report_s = time.perf_counter() - started
    return len(stream) / folded, report_s, len(stream)


def registry(users: int) -> list[tuple[str, int, int, bytes | None, bytes | None, int]]:
    """Every user's registry record, as the registry loader writes them."""
    return [
        (
            "identity.users.v1",
            user % 6,
            user,
            str(user).encode(),
            orjson.dumps(
                {
                    "type": "UserUpserted",
                    "occurred_at": _iso(-60),
                    "user_id": user,
                    "email": f"u{user}@example.com",
                    "nationalities": ["FR"],
                    "residence": "FR",
                    "account_type": "consumer",
                    "entitlements": ["fable-5"],
                }
            ),
            0,
        )
        for user in range(1, users + 1)
    ]


def explain_ledger(folder: Path, users: int) -> tuple[Path, int]:
    """A ledger holding the registry and the directive's story with notices for `users` users."""
    path = folder / "audit" / "ledger.sqlite"
    ledger = Ledger(path)
    stream = registry(users) + records(users)
    for start in range(0, len(stream), 5000):
        ledger.append([Record(t, p, o, k, v, (), 1) for t, p, o, k, v, _ in stream[start : start + 5000]])
    size = ledger.head()[0]
    ledger.close()
    return path, size


def measure_explain(users: int) -> tuple[float, float, int, float]:
    """p99 and median ms of GET /v1/explain over HTTP, as an auditor calls it; the ledger's size; its
    reopening in s."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        path, size = explain_ledger(folder, users)
        begin = time.perf_counter()
        Ledger(path).close()  # what a restarted audit does: the stored frontier, no pass over the entries
        reopen_s = time.perf_counter() - begin
        issuer = LocalIssuer()
        jwks = issuer.write(folder / "auth")
        port = free_port()
        server = multiprocessing.get_context("fork").Process(
            target=_serve, args=(path, jwks, issuer.issuer, port), daemon=True
        )
        server.start()
        try:
            headers = {"Authorization": f"Bearer {issuer.mint('bench-auditor', [Role.AUDITOR])}"}
            samples = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
                _wait_up(client)
                for n, user in enumerate(random.Random(7).sample(range(1, users + 1), EXPLAIN_CALLS + 20)):
                    begin = time.perf_counter()
                    answer = client.get("/v1/explain", params={"user": user, "model": "fable-5", "at": _iso(100)})
                    elapsed = (time.perf_counter() - begin) * 1000
                    answer.raise_for_status()
                    assert answer.json()["clusters"]["us-east"]["decision"] == "denied"
                    if n >= 20:  # the first calls warm the page cache
                        samples.append(elapsed)
        finally:
            server.terminate()
            server.join(10)
    return statistics.quantiles(samples, n=100)[98], statistics.median(samples), size, reopen_s


def _serve(path: Path, jwks: Path, issuer: str, port: int) -> None:
    """The audit's HTTP API over the ledger, in a process of its own as deployed (JWT auth on)."""
    auth = AuthSettings(mode="on", jwks_file=jwks, issuer=issuer)
    api = create_api("audit", lambda: Ledger(path, read_only=True), Signatures({}), Guard(auth, "audit"), lambda: True)
    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning")


def _wait_up(client: httpx.Client) -> None:
    for _ in range(600):
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the audit API did not come up")


def measure_verify(entries: int) -> float:
    signer = Signer.generate("bench")
    with tempfile.TemporaryDirectory() as folder:
        ledger = Ledger(Path(folder) / "ledger.sqlite")
        batch = 5000
        for start in range(0, entries, batch):
            ledger.append(
                [
                    Record(
                        "notifications.v1",
                        0,
                        o,
                        b"1",
                        orjson.dumps({"type": "NotificationDelivered", "event_id": str(o)}),
                    )
                    for o in range(start, min(entries, start + batch))
                ]
            )
        head = sign_head(signer, *ledger.tree_head(), datetime.now(UTC))
        ledger.close()
        reader = Ledger(Path(folder) / "ledger.sqlite", read_only=True)
        started = time.perf_counter()
        result = check_ledger(reader.entries(), [head], KeySet([signer.public()]))
        elapsed = time.perf_counter() - started
        reader.close()
    assert result.intact
    return entries / elapsed


def main() -> None:
    replay, report_s, events = measure_replay_and_report(USERS)
    explain_p99, explain_median, explain_entries, reopen_s = measure_explain(EXPLAIN_USERS)
    verify = measure_verify(LEDGER_ENTRIES)
    rows = [
        {
            "metric": "replay_events_per_s",
            "value": round(replay),
            "unit": "events/s",
            "target": ">= 100000",
            "note": f"{events:,} records folded in process in batches of {FETCH:,}, Kafka read excluded",
        },
        {
            "metric": "report_s_1M",
            "value": round(report_s, 2),
            "unit": "s",
            "target": "<= 30",
            "note": f"{USERS:,} affected users, notices included; fold + report + HTML, Kafka read excluded",
        },
        {
            "metric": "explain_ms",
            "value": round(explain_p99, 3),
            "unit": "ms p99",
            "target": "<= 50",
            "note": f"GET /v1/explain over HTTP (JWT, uvicorn in its own process), {EXPLAIN_CALLS} random users, "
            f"median {explain_median:.1f} ms; ledger of {explain_entries:,} entries (reopened in {reopen_s:.2f} s)",
        },
        {
            "metric": "verify_events_per_s",
            "value": round(verify),
            "unit": "entries/s",
            "target": "",
            "note": f"{LEDGER_ENTRIES:,}-entry ledger: chain, Merkle root, signed head",
        },
    ]
    publish("audit", rows, "audit: replay, report, explain, verify")


if __name__ == "__main__":
    main()
