"""Building user records and populations for impact tests."""

from __future__ import annotations

from pydantic import TypeAdapter

from services.impact.user_columns import Population
from shared.contracts.directives import DirectiveScope, Selector
from shared.contracts.users import UserUpserted

SELECTOR = TypeAdapter(Selector)


def user(
    user_id: int,
    nationalities: list[str] | None = ("DE",),
    residence: str | None = "DE",
    account_type: str = "consumer",
    organisation: str | None = None,
    entitlements: tuple[str, ...] = (),
) -> UserUpserted:
    return UserUpserted(
        producer="test",
        user_id=user_id,
        email=f"u{user_id}@example.com",
        nationalities=None if nationalities is None else list(nationalities),
        residence=residence,
        account_type=account_type,
        organisation=organisation,
        entitlements=list(entitlements),
    )


def population(*users: UserUpserted) -> Population:
    view = Population(capacity=4)
    view.upsert(list(users))
    return view


def scope(selector: dict, models: tuple[str, ...] = ("fable-5",), unknown: str = "restrict") -> DirectiveScope:
    return DirectiveScope(models=list(models), selector=selector, unknown_attribute=unknown)
