"""The registry loader on the real broker: every user produced once, keyed, parseable; upserts; tombstones."""

from __future__ import annotations

from devtools.registry.loader import delete, load, upsert
from devtools.registry.population import generate, records
from shared.contracts.users import UserUpserted, user_key
from tests.integration.registry.conftest import end_offsets, read_since

WIRE_ONLY = ("event_id", "occurred_at")  # differ per load by design


async def test_load_produces_every_user_once_keyed_by_id(bootstrap: str) -> None:
    pop = generate(5_000, seed=21, first_id=1_000_001)
    before = await end_offsets(bootstrap)
    reports: list[tuple[int, int]] = []
    produced = await load(bootstrap, pop, progress=lambda done, total: reports.append((done, total)), batch=1_000)
    got = [r for r in await read_since(bootstrap, before) if 1_000_001 <= int(r.key) <= 1_005_000]
    assert produced == 5_000
    assert len(got) == 5_000
    assert {r.key for r in got} == {user_key(i) for i in range(1_000_001, 1_005_001)}
    users = {r.key: UserUpserted.model_validate_json(r.value) for r in got}
    assert all(users[r.key].user_id == int(r.key) for r in got)
    assert len({u.event_id for u in users.values()}) == 5_000
    expected = {r["user_id"]: r for r in records(pop, 0, len(pop))}
    for user in users.values():
        dumped = user.model_dump(mode="json", exclude=set(WIRE_ONLY))
        assert dumped == {k: v for k, v in expected[user.user_id].items() if k not in WIRE_ONLY}
    assert reports[-1] == (5_000, 5_000) and [d for d, _ in reports] == sorted(d for d, _ in reports)


async def test_a_user_is_partitioned_by_key_so_compaction_keeps_the_last_record(bootstrap: str) -> None:
    before = await end_offsets(bootstrap)
    first = UserUpserted(
        producer="registry",
        user_id=2_000_001,
        email="ada@example.com",
        nationalities=["US", "IE"],
        residence="IE",
        account_type="consumer",
        entitlements=["fable-5"],
    )
    second = first.model_copy(update={"nationalities": ["IE"], "event_id": "second-upsert"})
    await upsert(bootstrap, first)
    await upsert(bootstrap, second)
    await delete(bootstrap, 2_000_001)
    got = [r for r in await read_since(bootstrap, before) if r.key == user_key(2_000_001)]
    assert len(got) == 3 and len({r.partition for r in got}) == 1
    assert UserUpserted.model_validate_json(got[0].value) == first
    assert UserUpserted.model_validate_json(got[1].value).nationalities == ["IE"]
    assert got[2].value is None  # the tombstone
