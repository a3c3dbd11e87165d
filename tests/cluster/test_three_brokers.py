"""A three-node Kafka cluster on loopback: replication 3, min.insync.replicas 2, and acks=all writes that lose
nothing and duplicate nothing while a node is killed, paused past its session timeout, or the active
controller is killed; two intakes racing on one directive. Run by `make test-cluster` (the `cluster` marker);
`make test` keeps one broker.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.broker import ROOT, LocalCluster
from shared.contracts.catalogue import DATA_TOPICS, DIRECTIVES
from shared.runtime.broker import make_broker
from shared.runtime.kafka import admin, producing, records_to_end
from shared.runtime.settings import KafkaSettings, ServiceSettings
from shared.runtime.topics import apply_topics
from tests.integration.intake.racing import race_amendments

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]
TOPIC = DIRECTIVES  # three partitions, kept forever: every record written must be read back


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    base = Path(os.environ.get("COUNTERMAND_TEST_KAFKA_DIR", ROOT / ".run" / "test-kafka")).resolve()
    nodes = LocalCluster(base.with_name(f"{base.name}-cluster"), 3)
    with nodes:
        asyncio.run(apply_topics(nodes.access.settings(), replication=3, min_insync_replicas=2))
        yield nodes


@pytest.fixture
def settings(cluster: LocalCluster) -> KafkaSettings:
    return cluster.access.settings(request_timeout_ms=30_000)


async def _write(settings: KafkaSettings, marks: range, during: asyncio.Event | None = None) -> None:
    """Produce one record per mark (acks=all, idempotent), every tenth awaited; `during` is set halfway."""
    async with producing(settings, "cluster-test") as producer:
        pending = []
        for mark in marks:
            key = f"d-{mark % 17}".encode()
            pending.append(await producer.send(TOPIC.name, f'{{"mark": {mark}}}'.encode(), key=key))
            if mark % 10 == 9:
                await asyncio.gather(*pending)
                pending.clear()
            if during is not None and mark == marks.start + len(marks) // 2:
                during.set()
                await asyncio.sleep(0)  # let the fault land while records are in flight
        await asyncio.gather(*pending)


async def _marks(settings: KafkaSettings) -> list[int]:
    seen = []
    async for record in records_to_end(settings, TOPIC, "cluster-test-read"):
        text = record.value.decode()
        if text.startswith('{"mark"'):  # not the directive events of the intake test
            seen.append(int(text.split(":")[1].strip(" }")))
    return seen


async def _settled_marks(settings: KafkaSettings, marks: range, timeout_s: float = 90.0) -> list[int]:
    """The marks on the topic once every one of `marks` is readable (or the timeout passed): a node just resumed
    may still answer as a leader with its old end offsets until it learns it was replaced."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        seen = await _marks(settings)
        if set(marks) <= set(seen) or asyncio.get_running_loop().time() > deadline:
            return seen
        await asyncio.sleep(2)


def _exactly(seen: list[int], marks: range) -> None:
    mine = [mark for mark in seen if mark in marks]
    assert len(mine) == len(set(mine)), f"{len(mine) - len(set(mine))} record(s) written twice"
    missing = sorted(set(marks) - set(mine))
    assert not missing, f"{len(missing)} record(s) lost, first {missing[:5]}"


async def _topic_replication(settings: KafkaSettings) -> tuple[dict[str, int], dict[str, str]]:
    async with admin(settings, "cluster-test-admin") as client:
        described = await client.describe_topics([t.name for t in DATA_TOPICS])
        min_isr = {}
        for topic in DATA_TOPICS:  # one resource per request, as shared.runtime.topics reads them
            answer = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic.name)])
            values = {entry[0]: entry[1] for entry in answer[0].resources[0][4]}
            min_isr[topic.name] = values.get("min.insync.replicas")
    replicas = {t["topic"]: min(len(p["replicas"]) for p in t["partitions"]) for t in described}
    return replicas, min_isr


def test_every_topic_has_three_replicas_and_needs_two_in_sync(settings: KafkaSettings) -> None:
    replicas, min_isr = asyncio.run(_topic_replication(settings))
    assert replicas == {t.name: 3 for t in DATA_TOPICS}
    assert min_isr == {t.name: "2" for t in DATA_TOPICS}


def test_two_intakes_amending_one_directive_at_once_publish_each_revision_once(
    settings: KafkaSettings, tmp_path: Path
) -> None:
    # Before the fault tests: their records are no directive events, and each intake's view dead-letters every one.
    asyncio.run(race_amendments(settings, tmp_path, f"race-{os.getpid()}", amendments=30, settle_s=300))


def test_a_node_killed_mid_write_loses_and_duplicates_nothing(cluster: LocalCluster, settings: KafkaSettings) -> None:
    marks = range(0, 3000)

    async def scenario() -> list[int]:
        fault = asyncio.Event()

        async def kill_when_told() -> None:
            await fault.wait()
            await asyncio.to_thread(cluster.kill, 2)

        await asyncio.gather(_write(settings, marks, fault), kill_when_told())
        return await _marks(settings)

    try:
        _exactly(asyncio.run(scenario()), marks)
    finally:
        cluster.restart(2)
    # Back with three nodes, the killed node's replicas catch up and the writes go on.
    later = range(3000, 3500)
    asyncio.run(_write(settings, later))
    _exactly(asyncio.run(_marks(settings)), later)


def test_a_node_paused_past_its_session_timeout_then_resumed(cluster: LocalCluster, settings: KafkaSettings) -> None:
    marks = range(10_000, 11_000)
    cluster.freeze(3)
    try:
        # The controller fences the paused node after broker.session.timeout.ms (9 s); writes go on with two.
        asyncio.run(_write(settings, marks))
    finally:
        cluster.thaw(3)
    _exactly(asyncio.run(_settled_marks(settings, marks)), marks)


def test_the_active_controller_killed_mid_write(cluster: LocalCluster, settings: KafkaSettings) -> None:
    leader = cluster.active_controller()
    assert leader in (1, 2, 3)
    marks = range(20_000, 21_000)

    async def scenario() -> list[int]:
        fault = asyncio.Event()

        async def kill_when_told() -> None:
            await fault.wait()
            await asyncio.to_thread(cluster.kill, leader)

        await asyncio.gather(_write(settings, marks, fault), kill_when_told())
        return await _marks(settings)

    try:
        _exactly(asyncio.run(scenario()), marks)
        assert cluster.active_controller() != leader  # the two left elected another
    finally:
        cluster.restart(leader)


def test_a_node_number_outside_the_cluster_is_refused(cluster: LocalCluster) -> None:
    with pytest.raises(ValueError, match="no node 4: the cluster has nodes 1 to 3"):
        cluster.kill(4)


def test_a_service_broker_reaches_the_cluster_through_a_comma_separated_bootstrap(settings: KafkaSettings) -> None:
    assert "," in settings.bootstrap

    async def scenario() -> list[int]:
        broker = make_broker(ServiceSettings(kafka=settings), "cluster-test", dead_letters=False)
        await broker.start()
        try:
            await broker.publish(b'{"mark": 30000}', TOPIC.name, key=b"d-faststream")
        finally:
            await broker.stop()
        return await _marks(settings)

    _exactly(asyncio.run(scenario()), range(30_000, 30_001))
