"""Invalid registry records are dead-lettered with the reason; the view and evaluations ignore them."""

from __future__ import annotations

import json

import pytest
from aiokafka import AIOKafkaProducer
from pyroaring import BitMap

from services.impact.app import ImpactService
from shared.contracts.catalogue import USERS
from shared.contracts.users import user_key
from tests.integration.impact.conftest import (
    DEAD_LETTERS,
    _bases,
    assessment_of,
    issued,
    letters_for,
    read_until,
    send_directive,
    send_users,
)
from tests.unit.impact.population_builder import user


def _edit(record: dict, case: str) -> tuple[bytes | None, dict]:
    key = user_key(record["user_id"])
    if case == "invalid country":
        record["nationalities"] = ["XX"]
    elif case == "unknown account type":
        record["account_type"] = "robot"
    elif case == "missing id":
        del record["user_id"]
    elif case == "negative id":
        record["user_id"], key = -5, b"-5"
    return key, record


# A record without a key cannot reach identity.users.v1 at all: the broker refuses it on a compacted topic.
REASONS = {
    "invalid country": "'XX' is not an ISO 3166-1 alpha-2 country code",
    "unknown account type": "account_type",
    "missing id": "user_id",
    "negative id": "key: '-5' is not a user id",
}


@pytest.mark.kafka
@pytest.mark.parametrize("case", list(REASONS))
async def test_an_invalid_registry_record_is_dead_lettered_with_the_reason_and_changes_no_evaluation(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str, case: str, to_lift: list
) -> None:
    base = next(_bases) * 100_000
    org = f"org-{unique}"
    await send_users(producer, [user(base + 1, ["FR"], organisation=org)])
    key, bad = _edit(json.loads(user(base + 1, ["CN"], "CN", "employee", organisation=org).model_dump_json()), case)
    await producer.send_and_wait(USERS.name, json.dumps(bad).encode(), key=key)
    await send_users(producer, [user(base + 2, ["FR"], organisation=org)])  # the consumer keeps going
    directive = f"{unique}-org"
    to_lift.append((directive, 1))
    await send_directive(producer, issued(directive, 1, {"kind": "organisation", "any_of": [org]}, ["fable-5"]))

    head, sets = await assessment_of(bootstrap, directive, "restrict")
    assert sets == {"fable-5": BitMap([base + 1, base + 2])}
    assert head["by_account_type"] == {"consumer": 2} and head["by_country"] == {"DE": 2}  # the good record stands
    (letter,) = letters_for(
        await read_until(bootstrap, DEAD_LETTERS.name, 1, lambda seen: bool(letters_for(seen, org.encode()))),
        org.encode(),
    )
    assert letter["topic"] == USERS.name and REASONS[case] in letter["reason"]
    assert service.view.population.columns().account_type[base + 1] == 0  # still the consumer record
