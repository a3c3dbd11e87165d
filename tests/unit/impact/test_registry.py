"""The registry view: upserts, tombstones, bad records set aside, offsets tracked."""

from __future__ import annotations

from dataclasses import dataclass

from services.impact.affected import assess
from services.impact.registry_view import RegistryView
from tests.unit.impact.population_builder import scope, user


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    offset: int
    partition: int = 0
    topic: str = "identity.users.v1"
    headers: tuple = ()


def upsert(user_id: int, offset: int, **fields) -> Record:
    return Record(str(user_id).encode(), user(user_id, **fields).model_dump_json().encode(), offset)


def test_the_last_record_of_a_user_in_a_batch_wins_and_a_tombstone_deletes() -> None:
    view = RegistryView()
    applied = view.apply(
        [upsert(1, 0, nationalities=["US"]), upsert(2, 1), upsert(1, 2, nationalities=["FR"]), Record(b"2", None, 3)]
    )
    assert sorted(applied.changed.tolist()) == [1, 2] and not applied.rejected
    assert set(assess(view.population, scope({"kind": "everyone"})).by_model["fable-5"]) == {1}
    assert set(assess(view.population, scope({"kind": "nationality", "any_of": ["FR"]})).by_model["fable-5"]) == {1}
    assert view.offsets == {0: 4}


def test_bad_records_are_rejected_with_a_reason_and_change_nothing() -> None:
    view = RegistryView()
    view.apply([upsert(5, 0, nationalities=["FR"])])
    bad_country = upsert(5, 1).value.replace(b'"DE"', b'"XX"')
    bad_account = upsert(5, 2).value.replace(b'"consumer"', b'"robot"')
    applied = view.apply(
        [
            Record(b"5", bad_country, 1),
            Record(b"5", bad_account, 2),
            Record(b"-3", b"{}", 3),
            Record(None, upsert(6, 4).value, 4),
            Record(b"7", upsert(6, 5).value, 5),
            Record(b"8", b"not json", 6),
        ]
    )
    reasons = [str(error) for _, error in applied.rejected]
    assert len(reasons) == 6
    assert "is not an ISO 3166-1 alpha-2 country code" in reasons[0]
    assert "account_type" in reasons[1]
    assert "key" in reasons[2] and "key" in reasons[3]
    assert "does not match the record key" in reasons[4]
    assert set(assess(view.population, scope({"kind": "nationality", "any_of": ["FR"]})).by_model["fable-5"]) == {5}
    assert view.population.users == 1
    assert view.offsets == {0: 7}


def test_the_view_reaches_end_offsets_only_when_every_partition_is_read() -> None:
    view = RegistryView()
    view.apply([upsert(1, 0), upsert(2, 1)])
    assert view.reached({0: 2, 1: 0}) and not view.reached({0: 3}) and not view.reached({1: 1})


def test_ids_grow_the_columns_without_losing_earlier_users() -> None:
    view = RegistryView()
    view.apply([upsert(3, 0, nationalities=["FR"])])
    view.apply([upsert(3_000_000, 1, nationalities=["FR"])])
    assert set(assess(view.population, scope({"kind": "everyone"})).by_model["fable-5"]) == {3, 3_000_000}
