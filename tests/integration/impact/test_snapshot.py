"""The user view survives a kill through its snapshot: a restart resumes from the recorded offsets."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from devtools import ROOT
from services.impact import view_snapshot as snapshots
from services.impact.affected import assess
from services.impact.app import build
from services.impact.reproduce import registry_view_at, reproduce
from shared.contracts.catalogue import USERS
from shared.contracts.directives import DirectiveScope
from shared.contracts.users import user_key
from shared.runtime.settings import KafkaSettings
from tests.integration.impact.conftest import (
    FOREIGN_TO_US,
    TIMEOUT_S,
    _bases,
    assessment_of,
    end_offsets,
    issued,
    lifted,
    random_users,
    send_directive,
    send_users,
    settings_for,
)

pytestmark = pytest.mark.kafka


async def registry_ends(bootstrap: str) -> dict[int, int]:
    return {p: o for (_, p), o in (await end_offsets(bootstrap, (USERS,))).items()}


async def snapshot_reaching(path: Path, ends: dict[int, int], process: subprocess.Popen) -> snapshots.Snapshot:
    """Poll until the process has written a snapshot that reflects at least these registry offsets."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        assert process.poll() is None, "the impact process exited"
        assert asyncio.get_running_loop().time() < deadline, "no snapshot reached the registry's end"
        try:
            found = snapshots.load(path)
            if all(found.offsets.get(p, 0) >= end for p, end in ends.items()):
                return found
        except snapshots.SnapshotUnusable:
            pass
        await asyncio.sleep(0.2)


async def test_a_killed_service_resumes_from_its_snapshot_and_reaches_the_digest_of_a_full_read(
    bootstrap: str, producer: AIOKafkaProducer, unique: str, tmp_path: Path
) -> None:
    base = next(_bases) * 100_000
    await send_users(producer, random_users(base, 1_000, seed=11))
    env = {
        **os.environ,
        "COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap,
        "COUNTERMAND_IMPACT_STATE_DIR": str(tmp_path),
        "COUNTERMAND_IMPACT_HTTP_PORT": "0",
        "COUNTERMAND_IMPACT_SNAPSHOT_EVERY_RECORDS": "1",
        "COUNTERMAND_IMPACT_SNAPSHOT_INTERVAL_S": "0",
        "COUNTERMAND_LOG_FORMAT": "json",
        "COUNTERMAND_IMPACT_INSTANCE": f"killed-{unique}",
    }
    with (tmp_path / "impact.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.impact"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            written = await snapshot_reaching(
                snapshots.snapshot_path(tmp_path), await registry_ends(bootstrap), process
            )
        finally:
            process.send_signal(signal.SIGKILL)  # no clean shutdown, no final snapshot
            process.wait(timeout=30)

    # the registry moves on while impact is down: signups, a change and a deletion
    await send_users(producer, random_users(base + 1_000, 100, seed=12) + random_users(base + 5, 1, seed=13))
    await producer.send_and_wait(USERS.name, None, key=user_key(base + 7))
    on_disk = snapshots.load(snapshots.snapshot_path(tmp_path))
    assert on_disk.offsets == written.offsets or all(on_disk.offsets[p] >= o for p, o in written.offsets.items())

    service = build(settings_for(bootstrap, tmp_path, snapshot_on_stop=False))
    await service.start()
    try:
        ends = await registry_ends(bootstrap)
        assert service.resumed_from == on_disk.offsets
        assert 101 <= service.records_read < sum(ends.values())  # only what came after the snapshot
        assert service.view.offsets == ends

        fresh = await registry_view_at(
            KafkaSettings(bootstrap=bootstrap), service.view.offsets
        )  # a full read from the beginning
        scope = DirectiveScope(models=["fable-5", "mythos-5"], selector=FOREIGN_TO_US)
        assert assess(service.view.population, scope).digest == assess(fresh.population, scope).digest
        assert service.view.population.users == fresh.population.users

        directive = f"{unique}-resumed"
        await send_directive(producer, issued(directive, 1, FOREIGN_TO_US, ["fable-5", "mythos-5"]))
        head, _ = await assessment_of(bootstrap, directive, "restrict")
        assert (
            head["digest"] == (await reproduce(KafkaSettings(bootstrap=bootstrap), head["registry_offsets"], scope))[1]
        )
        await lifted(bootstrap, producer, directive)
    finally:
        await service.stop()


@pytest.mark.parametrize("damage", ["missing", "garbage", "beyond the registry"])
async def test_an_unusable_snapshot_falls_back_to_a_full_read(
    bootstrap: str, producer: AIOKafkaProducer, tmp_path: Path, damage: str
) -> None:
    base = next(_bases) * 100_000
    await send_users(producer, random_users(base, 50, seed=21))
    path = snapshots.snapshot_path(tmp_path)
    if damage == "garbage":
        path.parent.mkdir(parents=True)
        path.write_bytes(b"PK\x03\x04 not a snapshot")
    elif damage == "beyond the registry":
        ends = await registry_ends(bootstrap)
        empty = build(settings_for(bootstrap, tmp_path)).view.population
        snapshots.write(path, empty.columns(), {p: end + 1_000_000 for p, end in ends.items()})
    ends = await registry_ends(bootstrap)

    service = build(settings_for(bootstrap, tmp_path, snapshot_on_stop=False))
    await service.start()
    try:
        assert service.resumed_from is None
        assert service.records_read >= sum(ends.values())  # everything, from the beginning
        fresh = await registry_view_at(KafkaSettings(bootstrap=bootstrap), service.view.offsets)
        scope = DirectiveScope(models=["fable-5"], selector=FOREIGN_TO_US)
        assert assess(service.view.population, scope).digest == assess(fresh.population, scope).digest
    finally:
        await service.stop()


async def test_a_clean_stop_writes_a_snapshot_the_next_start_resumes_from(
    bootstrap: str, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    base = next(_bases) * 100_000
    await send_users(producer, random_users(base, 30, seed=31))
    first = build(settings_for(bootstrap, tmp_path, snapshot_every_records=0))
    await first.start()
    await first.stop()
    assert snapshots.load(snapshots.snapshot_path(tmp_path)).offsets == first.view.offsets

    second = build(settings_for(bootstrap, tmp_path, snapshot_every_records=0, snapshot_on_stop=False))
    await second.start()
    try:
        assert second.resumed_from == first.view.offsets and second.records_read == 0
        assert second.view.population.users == first.view.population.users
    finally:
        await second.stop()
