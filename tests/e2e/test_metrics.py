"""Metrics end to end: Debian's real Prometheus scrapes every service of a running stack, and time-to-enforce and
the per-cluster rollout states come back through its HTTP API; with the broker down, /metrics still answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.prometheus import Prometheus
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.scenarios import mission_body
from devtools.stack import Stack
from devtools.waiting import eventually
from shared.contracts.catalogue import ENFORCEMENT
from shared.contracts.enforcement import DirectiveEnforced
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

MISSION = mission_body()
TIMEOUT = 180
QUICK_S = 2.0  # a scrape reads memory: it answers at once, broker or not


@pytest.fixture(scope="module")
def metrics_kafka(kafka_dir: Path, kafka_secrets: Path) -> Iterator[LocalBroker]:
    """A broker of its own: the broker-down test stops it."""
    with LocalBroker(kafka_dir.with_name("metrics-kafka"), secrets=kafka_secrets) as broker:
        yield broker


@pytest.fixture(scope="module")
async def enforced(
    metrics_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, DirectiveEnforced]]:
    """A stack that issued the mission directive (four eyes) and saw it enforced on every cluster."""
    bootstrap = metrics_kafka.bootstrap
    await apply_topics(KafkaSettings(bootstrap=bootstrap))
    stack = Stack(bootstrap, tmp_path_factory.mktemp("metrics-stack"), access=metrics_kafka.access)
    await asyncio.to_thread(stack.start)
    try:
        await load_registry(bootstrap, registry_population.generate(500, seed=3))
        await asyncio.to_thread(stack.issue, MISSION)
        async with TopicReader(bootstrap, ENFORCEMENT) as enforcement:
            done = await enforcement.wait_for(
                lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == MISSION["directive_id"],
                TIMEOUT,
                "the mission enforced",
            )
        yield stack, done
    finally:
        await asyncio.to_thread(stack.stop)


def _targets(stack: Stack) -> dict[str, str]:
    return {name: f"127.0.0.1:{proc.http_port}" for name, proc in stack.processes.items()}


def _check_access(stack: Stack) -> None:
    """A few checks on each agent's hot path (GET /v1/access, as a gateway)."""
    for cluster in stack.clusters:
        for user in range(1, 6):
            url = f"{stack.agent(cluster.cluster_id).url}/v1/access"
            params = {"user": user, "model": cluster.models[0]}
            httpx.get(url, params=params, headers=stack.gateway, timeout=10).raise_for_status()


async def test_prometheus_reads_time_to_enforce_and_cluster_states_from_every_service(
    enforced: tuple[Stack, DirectiveEnforced], tmp_path: Path
) -> None:
    stack, done = enforced
    assert len(stack.processes) == 5 + len(stack.clusters)
    await asyncio.to_thread(_check_access, stack)
    server = Prometheus(_targets(stack), tmp_path / "prometheus")
    assert "SUCCESS" in await asyncio.to_thread(server.check_config)
    await asyncio.to_thread(server.start)
    try:
        up = await eventually(
            lambda: (seen := server.targets_up()) and len(seen) == len(stack.processes) and all(seen.values()) and seen,
            "every service scraped",
            timeout=60,
        )
        assert set(up) == set(stack.processes)

        enforce_count = await eventually(
            lambda: server.query('countermand_time_to_enforce_seconds_count{kind="issue"} > 0'),
            "time to enforce of the issued directive",
            timeout=60,
        )
        assert [r["metric"]["job"] for r in enforce_count] == ["enforcement"]

        def applied() -> dict[str, float]:
            rows = server.query('countermand_cluster_rollouts{state="applied"}')
            found = {r["metric"]["cluster"]: float(r["value"][1]) for r in rows}
            return found if found == dict.fromkeys(done.clusters, 1.0) else {}

        assert await eventually(applied, "one applied revision per cluster", timeout=60)
        assert not server.query('countermand_cluster_rollouts{state=~"pending|overdue|drifted|failed"} > 0')
        checks = await eventually(
            lambda: server.query("sum by (cluster) (countermand_access_checks_total)"), "access checks", timeout=60
        )
        assert {r["metric"]["cluster"] for r in checks} == {c.cluster_id for c in stack.clusters}
        assert server.query('faststream_received_messages_total{app_name="enforcement"}'), "broker-side metrics"
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_scrape_while_the_broker_is_down_answers_quickly_from_memory(
    enforced: tuple[Stack, DirectiveEnforced], metrics_kafka: LocalBroker
) -> None:
    stack, _ = enforced
    await asyncio.to_thread(metrics_kafka.stop)
    for name, proc in stack.processes.items():
        started = time.monotonic()
        reply = await asyncio.to_thread(httpx.get, f"{proc.url}/metrics", timeout=QUICK_S * 5)
        elapsed = time.monotonic() - started
        assert reply.status_code == 200, name
        assert elapsed < QUICK_S, f"{name} took {elapsed:.2f}s"
        assert "countermand_cluster_rollouts" in reply.text, name
    enforcement = (await asyncio.to_thread(httpx.get, f"{stack.service('enforcement').url}/metrics")).text
    assert 'countermand_time_to_enforce_seconds_count{kind="issue"} 1.0' in enforcement
