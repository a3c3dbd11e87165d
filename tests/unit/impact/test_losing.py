"""Users losing access are those covered AND entitled; coverage itself is unchanged."""

from __future__ import annotations

from pyroaring import BitMap

from services.impact.losing import losing_by_model
from services.impact.user_columns import Population
from shared.contracts.users import UserUpserted


def _user(user_id: int, entitlements: list[str]) -> UserUpserted:
    return UserUpserted(
        producer="test",
        user_id=user_id,
        email=f"u{user_id}@example.com",
        nationalities=["FR"],
        residence="FR",
        account_type="consumer",
        entitlements=entitlements,
    )


def test_only_covered_users_entitled_to_a_model_count_as_losing_it() -> None:
    population = Population()
    population.upsert([_user(1, ["fable-5"]), _user(2, ["fable-5", "mythos-5"]), _user(3, []), _user(4, ["mythos-5"])])
    covered = {"fable-5": BitMap([1, 2, 3]), "mythos-5": BitMap([1, 2, 3, 99])}  # 99: beyond the view
    assert losing_by_model(population, covered) == {"fable-5": 2, "mythos-5": 1}
    assert losing_by_model(population, {"lyric-4": BitMap([1, 2])}) == {"lyric-4": 0}  # nobody holds it
