"""`countermand registry import` on the real broker: values that parse as UserUpserted on the shared
partitioner's partitions, tombstones for deleted rows and for a snapshot's absent users, and a second import
of the same file that changes nothing in effect."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from cli.imports import importer
from cli.imports.columns import parse_mapping
from cli.main import app
from shared.contracts.catalogue import USERS
from shared.contracts.users import UserUpserted, user_key
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics, partition_for

HEADER = "user_id,email,nationalities,residence,account_type,organisation,entitlements,locale,stateless,deleted"
AT = datetime(2026, 4, 1, tzinfo=UTC)


def users_csv(folder: Path, first: int, *, deleted: int | None = None, count: int = 40) -> Path:
    rows = [
        f"{first + n},u{first + n}@example.com,{'US;IE' if n % 3 else 'KP'},{'DE' if n % 2 else ''},"
        f"{('consumer', 'employee', 'enterprise_member')[n % 3]},org-{n % 4},fable-5|mythos-5,en,,"
        for n in range(count)
    ]
    rows.append(f"{first + count},s@example.com,,US,consumer,,,,true,")  # stateless: holds none
    if deleted is not None:
        rows.append(f"{deleted},,,,,,,,,true")
    path = folder / "users.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


async def latest(settings: KafkaSettings, topic=USERS) -> dict[bytes, tuple[int, bytes | None]]:
    """Key -> (partition, last value) of every key on the topic now."""
    found = {}
    async for record in records_to_end(settings, topic, "test-imports"):
        found[record.key] = (record.partition, record.value)
    return found


async def test_import_twice_then_snapshot(bootstrap: str, unique: str, tmp_path: Path) -> None:
    settings = KafkaSettings(bootstrap=bootstrap)
    topic = dataclasses.replace(USERS, name=f"identity.users.v1.{unique}")  # a snapshot tombstones the rest
    await apply_topics(settings, (topic,))
    old = 9_000
    plan = importer.prepare(users_csv(tmp_path, 9_001), parse_mapping([]), AT)
    assert await importer.run(plan, settings, topic=topic) == 41
    before = await latest(settings, topic)
    users = {key: UserUpserted.model_validate_json(value) for key, (_, value) in before.items()}
    assert {u.user_id for u in users.values()} == set(range(9_001, 9_042))
    assert all(partition_for(topic, key) == partition for key, (partition, _) in before.items())
    assert users[user_key(9_001)].nationalities == ["KP"] and users[user_key(9_001)].residence is None
    assert users[user_key(9_041)].nationalities == []

    await importer.run(importer.prepare(users_csv(tmp_path, 9_001), parse_mapping([]), AT), settings, topic=topic)
    assert await latest(settings, topic) == before  # the same file again: the same values

    await importer.run(
        importer.prepare(users_csv(tmp_path, old, count=1), parse_mapping([]), AT), settings, topic=topic
    )
    plan = importer.prepare(users_csv(tmp_path, 9_001, deleted=9_041, count=30), parse_mapping([]), AT)
    plan = await importer.with_absent(plan, settings, topic)
    assert sorted(plan.absent.tolist()) == [old, *range(9_032, 9_041)]  # 9_031 is now the stateless row
    await importer.run(plan, settings, topic=topic)
    after = await latest(settings, topic)
    gone = {user_key(i) for i in (old, 9_041, *range(9_032, 9_041))}
    assert {key for key, (_, value) in after.items() if value is None} == gone
    assert after[user_key(9_003)] == before[user_key(9_003)]


async def test_the_command_imports_into_the_users_topic(bootstrap: str, tmp_path: Path) -> None:
    path = users_csv(tmp_path, 7_700_001, deleted=7_700_009, count=5)
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["registry", "import", str(path), "--bootstrap", bootstrap]
    )
    assert result.exit_code == 0, result.output
    assert "produced 6 upserts, 1 deletions" in " ".join(result.output.split())
    on_topic = await latest(KafkaSettings(bootstrap=bootstrap))
    assert on_topic[user_key(7_700_009)][1] is None
    user = UserUpserted.model_validate_json(on_topic[user_key(7_700_003)][1])
    assert (user.user_id, user.account_type, user.organisation) == (7_700_003, "enterprise_member", "org-2")
    assert on_topic[user_key(7_700_003)][0] == partition_for(USERS, user_key(7_700_003))


async def _records(settings: KafkaSettings, topic) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """Partition -> its (key, value) records in offset order."""
    found: dict[int, list] = {}
    async for record in records_to_end(settings, topic, "test-imports"):
        found.setdefault(record.partition, []).append((record.key, record.value))
    return found


async def test_two_producer_processes_write_what_one_writes_partition_by_partition(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = KafkaSettings(bootstrap=bootstrap)
    plan = importer.prepare(users_csv(tmp_path, 50_001, deleted=60_000, count=3000), parse_mapping([]), AT)
    written = []
    for processes in (1, 2):
        topic = dataclasses.replace(USERS, name=f"identity.users.v1.{unique}-{processes}")
        await apply_topics(settings, (topic,))
        seen: list[int] = []
        assert await importer.run(plan, settings, seen.append, topic=topic, processes=processes) == 3002
        assert seen[-1] == 3002 and seen == sorted(seen)
        written.append(await _records(settings, topic))
    assert written[0] == written[1] and len(written[0]) == USERS.partitions
