"""Traces and metrics over OTLP: the services run as processes on the real broker and export over OTLP/HTTP to a
collector on loopback. The directive's span tree reaches intake, impact, enforcement, every agent and the notifier
under one trace id with every parent link unbroken; every service's metrics arrive; a refusing collector stalls none.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from devtools.broker import LocalBroker
from devtools.collector import Collector, ReceivedSpan
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.registry.loader import upsert
from devtools.scenarios import mission_body
from devtools.stack import Stack
from devtools.waiting import eventually
from shared.contracts.catalogue import ACKS, COMMANDS, DIRECTIVES, ENFORCEMENT, IMPACT, NOTIFICATIONS
from shared.contracts.enforcement import DirectiveEnforced
from shared.contracts.users import UserUpserted
from shared.runtime.auth import Role

MISSION = mission_body()
DIRECTIVE = MISSION["directive_id"]
TIMEOUT = 180
SERVICES = {"intake", "impact", "enforcement", "agent", "notifier"}
SIGNUP = UserUpserted(  # a foreign national signing up after enforcement: a delta, from impact's batch consumer
    producer="registry",
    user_id=900_001,
    email="newcomer@example.com",
    nationalities=["FR"],
    residence="US",
    account_type="consumer",
    entitlements=["fable-5"],
)
DERIVED = (IMPACT, COMMANDS, ACKS, ENFORCEMENT, NOTIFICATIONS)  # what the directive causes, topic by topic
CONVERSATION = "messaging.message.conversation_id"  # FastStream's span attribute: the record's correlation id


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    with Collector() as server:
        yield server


@pytest.fixture(scope="module")
async def traced(
    kafka: LocalBroker, bootstrap: str, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, list[Any]]]:
    """A stack exporting traces over OTLP that issued the mission and saw it enforced and its notices sent;
    (the stack, every message on the directive's derived topics that names the directive)."""
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    stack = Stack(bootstrap, tmp_path_factory.mktemp("traces-stack"), access=kafka.access, extra_env=otel)
    await asyncio.to_thread(stack.start)
    try:
        await load_registry(bootstrap, registry_population.generate(300, seed=5))
        await asyncio.to_thread(stack.issue, MISSION)
        async with TopicReader(bootstrap, ENFORCEMENT) as enforcement:
            await enforcement.wait_for(
                lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == DIRECTIVE, TIMEOUT, "enforced"
            )
        async with TopicReader(bootstrap, NOTIFICATIONS) as notifications:
            await notifications.wait_for(
                lambda m: m.type == "NotificationDelivered" and m.directive_id == DIRECTIVE, TIMEOUT, "a notice"
            )
        await upsert(bootstrap, SIGNUP)
        async with TopicReader(bootstrap, ACKS) as acks:
            await acks.drain(
                lambda seen: (
                    {c.cluster_id for c in stack.clusters}
                    <= {m.cluster_id for m in seen if m.type == "CommandApplied" and m.action == "delta"}
                ),
                TIMEOUT,
                "the newcomer's delta applied by every cluster",
            )
        derived = []
        for topic in (DIRECTIVES, *DERIVED):
            async with TopicReader(bootstrap, topic) as reader:
                await reader.poll()
                await reader.poll()
                derived += [m for m in reader.messages if getattr(m, "correlation_id", None) == DIRECTIVE]
        yield stack, derived
    finally:
        await asyncio.to_thread(stack.stop)


def _published(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    """Publish spans by the event id they carried (FastStream's conversation id is the envelope's event id)."""
    return {s.attributes[CONVERSATION]: s for s in spans if s.name.endswith("publish") and CONVERSATION in s.attributes}


async def test_one_trace_per_directive_spans_every_service_with_unbroken_parent_links(
    traced: tuple[Stack, list[Any]], collector: Collector
) -> None:
    _, derived = traced
    issued = next(m for m in derived if m.type == "DirectiveIssued")
    caused = [m for m in derived if m.type not in ("DirectiveProposed", "DirectiveIssued")]
    assert {m.type for m in caused} >= {
        "ImpactAssessed",
        "AffectedSetChunk",
        "AffectedSetDelta",
        "RestrictCommand",
        "DeltaCommand",
        "CommandApplied",
        "DirectiveEnforced",
        "NotificationDelivered",
    }
    wanted = {issued.event_id, *(m.event_id for m in caused)}

    def every_event_published() -> dict[str, ReceivedSpan]:
        found = _published(collector.spans())
        return found if wanted <= set(found) else {}

    published = await eventually(every_event_published, "a publish span for every event of the directive", 60)
    trace = published[issued.event_id].trace_id
    strays = {m.type for m in caused if published[m.event_id].trace_id != trace}
    assert not strays, f"events published outside the directive's trace: {sorted(strays)}"

    tree = [s for s in collector.spans() if s.trace_id == trace]
    services = {s.service.removeprefix("countermand-") for s in tree}
    assert services >= SERVICES, f"services in the trace: {sorted(services)}"
    ids = {s.span_id for s in tree}
    roots = [s for s in tree if not s.parent_id]
    orphans = [(s.service, s.name) for s in tree if s.parent_id and s.parent_id not in ids]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}"
    assert [(r.service, r.kind) for r in roots] == [("countermand-intake", 2)], "one root: intake's HTTP request"


async def test_every_agent_and_every_notice_of_the_directive_is_in_its_trace(
    traced: tuple[Stack, list[Any]], collector: Collector
) -> None:
    stack, derived = traced
    published = _published(collector.spans())
    trace = published[next(m for m in derived if m.type == "DirectiveIssued").event_id].trace_id
    acks = {m.cluster_id for m in derived if m.type == "CommandApplied" and published[m.event_id].trace_id == trace}
    assert acks == {c.cluster_id for c in stack.clusters}
    notices = [m for m in derived if m.type.startswith("Notification")]
    assert notices and all(published[m.event_id].trace_id == trace for m in notices)


async def test_every_service_exports_its_prometheus_metrics_over_otlp(
    traced: tuple[Stack, list[Any]], collector: Collector
) -> None:
    stack, _ = traced

    def names() -> dict[str, set[str]]:
        found = collector.metric_names()
        return found if {f"countermand-{n}" for n in (*SERVICES, "audit")} <= set(found) else {}

    found = await eventually(names, "metrics from every service", 60)
    assert "countermand_time_to_enforce_seconds" in found["countermand-enforcement"]
    assert "countermand_cluster_rollouts" in found["countermand-enforcement"]
    assert "countermand_consumer_lag_records" in found["countermand-impact"]
    assert "faststream_received_messages" in found["countermand-notifier"], "FastStream's broker metrics too"


async def test_a_service_whose_collector_refuses_connections_keeps_serving(traced: tuple[Stack, list[Any]]) -> None:
    stack, _ = traced
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = stack._env("intake")  # noqa: SLF001 (a second intake instance, beside the stack's)
    env.update(
        {
            "COUNTERMAND_INTAKE_INSTANCE": "refused",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": dead,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    proc = stack.spawn("intake-refused", "intake", env)
    try:
        await asyncio.to_thread(stack.wait_ready, 90)
        token = stack.token("carol", Role.PROPOSER)
        async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:
            for _ in range(10):  # across many export attempts, each refused
                assert (await client.get("/metrics")).status_code == 200
                assert (await client.get("/readyz")).status_code == 200
                assert (await client.get("/directives", headers=token)).status_code == 200
                await asyncio.sleep(0.3)
        log = proc.log.read_text(errors="replace")
        assert "metrics export not accepted" in log, "the refused exports are logged"
        assert proc.popen.poll() is None, "still running"
    finally:
        await asyncio.to_thread(stack.stop_one, "intake-refused")
    assert proc.popen.returncode == 0, "and it stops cleanly"
