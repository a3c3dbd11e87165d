"""Registry changes after a directive, on the real broker: signups, a gained nationality, a deletion."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from pyroaring import BitMap

from services.impact.app import ImpactService
from shared.contracts.catalogue import USERS
from shared.contracts.users import user_key
from tests.integration.impact.conftest import (
    FOREIGN_TO_US,
    _bases,
    added_ids,
    assessment_of,
    deltas_of,
    impact_events,
    issued,
    passed_marker,
    removed_ids,
    send_directive,
    send_users,
    until,
)
from tests.unit.impact.population_builder import user

pytestmark = pytest.mark.kafka


def in_org(org: str, *clauses: dict) -> dict:
    return {"kind": "all_of", "of": [{"kind": "organisation", "any_of": [org]}, *clauses]}


async def test_a_new_foreign_signup_becomes_denied(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str, to_lift: list
) -> None:
    base = next(_bases) * 100_000
    org = f"org-{unique}"
    await send_users(producer, [user(base + 1, ["US"], organisation=org)])
    directive = f"{unique}-signup"
    to_lift.append((directive, 1))
    await send_directive(producer, issued(directive, 1, in_org(org, FOREIGN_TO_US), ["fable-5", "mythos-5"]))
    _, sets = await assessment_of(bootstrap, directive, "restrict")
    assert sets == {"fable-5": BitMap(), "mythos-5": BitMap()}

    await send_users(producer, [user(base + 2, ["BR"], organisation=org)])  # the signup
    events = await impact_events(bootstrap, directive, lambda mine: len(deltas_of(mine, directive)) >= 2)
    deltas = deltas_of(events, directive)
    assert {d["model"] for d in deltas} == {"fable-5", "mythos-5"}
    assert added_ids(deltas) == BitMap([base + 2]) and removed_ids(deltas) == BitMap()
    await until(lambda: service.directives.active[directive].sets["mythos-5"] == BitMap([base + 2]), "the delta")


async def test_a_user_gaining_us_nationality_leaves_only_the_directives_that_no_longer_cover_them(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str, to_lift: list
) -> None:
    base = next(_bases) * 100_000
    org = f"org-{unique}"
    person = base + 1
    await send_users(producer, [user(person, ["FR"], organisation=org), user(base + 2, ["FR"], organisation=org)])
    foreign, french = f"{unique}-foreign", f"{unique}-french"
    to_lift.extend([(foreign, 1), (french, 1)])
    await send_directive(producer, issued(foreign, 1, in_org(org, FOREIGN_TO_US), ["fable-5"]))
    await send_directive(
        producer, issued(french, 1, in_org(org, {"kind": "nationality", "any_of": ["FR"]}), ["fable-5"])
    )
    assert (await assessment_of(bootstrap, foreign, "restrict"))[1]["fable-5"] == BitMap([person, base + 2])
    assert (await assessment_of(bootstrap, french, "restrict"))[1]["fable-5"] == BitMap([person, base + 2])

    await send_users(producer, [user(person, ["FR", "US"], organisation=org)])  # now a US national too
    await impact_events(bootstrap, foreign, lambda mine: bool(deltas_of(mine, foreign)))
    events = await passed_marker(bootstrap, producer, unique, "after-naturalisation")

    assert removed_ids(deltas_of(events, foreign)) == BitMap([person])
    assert deltas_of(events, french) == []  # the other directive still covers them: its set does not change
    assert service.directives.active[foreign].sets["fable-5"] == BitMap([base + 2])
    assert service.directives.active[french].sets["fable-5"] == BitMap([person, base + 2])


async def test_a_deleted_user_leaves_the_affected_set(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str, to_lift: list
) -> None:
    base = next(_bases) * 100_000
    org = f"org-{unique}"
    await send_users(producer, [user(base + 1, ["CN"], organisation=org), user(base + 2, ["CN"], organisation=org)])
    directive = f"{unique}-deleted"
    to_lift.append((directive, 1))
    await send_directive(producer, issued(directive, 1, in_org(org, FOREIGN_TO_US), ["fable-5"]))
    assert (await assessment_of(bootstrap, directive, "restrict"))[1]["fable-5"] == BitMap([base + 1, base + 2])

    await producer.send_and_wait(USERS.name, None, key=user_key(base + 1))  # tombstone
    events = await impact_events(bootstrap, directive, lambda mine: bool(deltas_of(mine, directive)))
    (delta,) = deltas_of(events, directive)
    assert removed_ids([delta]) == BitMap([base + 1]) and added_ids([delta]) == BitMap()
    await until(lambda: service.directives.active[directive].sets["fable-5"] == BitMap([base + 2]), "the delta")
