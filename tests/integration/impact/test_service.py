"""The impact service on the real broker: assessments equal a per-user oracle, lifts, deltas, dead letters."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pyroaring import BitMap

from services.impact.app import ImpactService, build
from services.impact.settings import ImpactSettings
from shared.contracts.bitmaps import decode_bitmap, scope_digest, set_digest
from shared.contracts.catalogue import DIRECTIVES, IMPACT, USERS, dead_letter_topic
from shared.contracts.directives import DirectiveLifted
from shared.contracts.users import user_key
from shared.runtime.settings import KafkaSettings
from tests.integration.impact.conftest import (
    FOREIGN_TO_US,
    _bases,
    assessment_of,
    issued,
    oracle,
    random_users,
    read_until,
    registry_at,
    send_directive,
    send_users,
)
from tests.unit.impact.population_builder import user

pytestmark = pytest.mark.kafka


async def test_assessment_equals_the_oracle_and_lift_restores_only_what_no_other_directive_covers(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str
) -> None:
    base = next(_bases) * 100_000
    people = random_users(base, 2_000, seed=1)
    await send_users(producer, people)
    await send_users(producer, [])
    for user_id in (base + 3, base + 4):
        await producer.send(USERS.name, None, key=user_key(user_id))  # tombstones: deleted users
    await producer.flush()
    foreign, chinese = f"{unique}-foreign", f"{unique}-cn"
    # Models of this test's own: other tests' directives on the shared topics stay active and would
    # (rightly) keep their users denied, changing what a lift restores on a common model.
    fable, mythos = f"fable-{unique}", f"mythos-{unique}"
    await send_directive(producer, issued(foreign, 1, FOREIGN_TO_US, [fable, mythos]))

    head, sets = await assessment_of(bootstrap, foreign, "restrict")
    people_then = await registry_at(bootstrap, head["registry_offsets"])
    expected = oracle(people_then, FOREIGN_TO_US)
    assert base + 3 not in people_then and base + 5 in people_then  # the tombstones were inside the offsets
    assert sets == {fable: expected, mythos: expected}
    assert head["model_digests"] == {fable: set_digest(expected), mythos: set_digest(expected)}
    assert head["digest"] == scope_digest(head["model_digests"])
    assert head["affected_users"] == len(expected) and head["chunks"] == 2
    assert sum(head["by_country"].values()) == len(expected)
    assert head["correlation_id"] == foreign and head["event_id"] == f"impact:{foreign}:1:restrict:assessed"

    await send_directive(producer, issued(chinese, 1, {"kind": "nationality", "any_of": ["CN"]}, [fable]))
    _, chinese_sets = await assessment_of(bootstrap, chinese, "restrict")
    await send_directive(producer, DirectiveLifted(producer="test", directive_id=foreign, revision=1))
    lift, restored = await assessment_of(bootstrap, foreign, "lift")
    assert restored == {fable: expected - chinese_sets[fable], mythos: expected}
    assert len(chinese_sets[fable] & expected) > 0  # the overlap is real, so the subtraction is tested
    assert lift["affected_by_model"] == {fable: len(restored[fable]), mythos: len(expected)}
    assert lift["model_digests"][fable] == set_digest(restored[fable])
    assert foreign not in service.directives.active and chinese in service.directives.active


async def test_a_redelivered_or_older_revision_is_not_assessed_again(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str
) -> None:
    directive = f"{unique}-again"
    await send_directive(producer, issued(directive, 2, {"kind": "everyone"}, ["fable-5"]))
    await assessment_of(bootstrap, directive, "restrict")
    await send_directive(producer, issued(directive, 2, {"kind": "everyone"}, ["fable-5"]))
    await send_directive(producer, issued(directive, 1, {"kind": "everyone"}, ["fable-5"]))
    marker = f"{unique}-marker"
    await send_directive(producer, issued(marker, 1, {"kind": "everyone"}, ["fable-5"]))
    await assessment_of(bootstrap, marker, "restrict")  # processed after the duplicates (same consumer, in order)
    heads = [
        e
        for e in await read_until(
            bootstrap, IMPACT.name, IMPACT.partitions, lambda seen: any(e.get("directive_id") == marker for e in seen)
        )
        if e.get("directive_id") == directive and e["type"] == "ImpactAssessed"
    ]
    assert [(h["revision"], h["action"]) for h in heads] == [(2, "restrict")]


async def test_registry_changes_after_a_directive_are_published_as_deltas(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str
) -> None:
    base = next(_bases) * 100_000
    organisation = f"org-{unique}"
    selector = {"kind": "all_of", "of": [FOREIGN_TO_US, {"kind": "organisation", "any_of": [organisation]}]}
    await send_users(
        producer, [user(base + 1, ["FR"], organisation=organisation), user(base + 2, ["US"], organisation=organisation)]
    )
    directive = f"{unique}-delta"
    await send_directive(producer, issued(directive, 1, selector, ["fable-5"]))
    _, sets = await assessment_of(bootstrap, directive, "restrict")
    assert sets == {"fable-5": BitMap([base + 1])}

    await send_users(
        producer, [user(base + 2, ["IE"], organisation=organisation), user(base + 3, None, organisation=organisation)]
    )
    await producer.send_and_wait(USERS.name, None, key=user_key(base + 1))

    def deltas(events: list) -> list:
        return [e for e in events if e.get("directive_id") == directive and e["type"] == "AffectedSetDelta"]

    def settled(events: list) -> bool:
        held = BitMap([base + 1])
        for delta in deltas(events):
            held = (held - decode_bitmap(delta["removed"])) | decode_bitmap(delta["added"])
        return held == BitMap([base + 2, base + 3])

    events = deltas(await read_until(bootstrap, IMPACT.name, IMPACT.partitions, settled))
    assert [d["seq"] for d in events] == list(range(1, len(events) + 1))
    assert events[-1]["model_digest"] == set_digest(BitMap([base + 2, base + 3]))
    assert service.directives.active[directive].sets["fable-5"] == BitMap([base + 2, base + 3])


async def test_poison_directive_and_invalid_user_record_are_dead_lettered_and_consumers_keep_going(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str
) -> None:
    base = next(_bases) * 100_000
    organisation = f"org-{unique}"
    poison = f"{unique}-poison".encode()
    await producer.send_and_wait(DIRECTIVES.name, b'{"type": "DirectiveIssued", "revision": "x"}', key=poison)
    bad_user = user(base + 1, ["FR"], organisation=organisation).model_dump_json().replace('"FR"', '"XX"')
    await producer.send_and_wait(USERS.name, bad_user.encode(), key=user_key(base + 1))
    await send_users(producer, [user(base + 2, ["FR"], organisation=organisation)])
    directive = f"{unique}-after-poison"
    await send_directive(
        producer, issued(directive, 1, {"kind": "organisation", "any_of": [organisation]}, ["fable-5"])
    )

    _, sets = await assessment_of(bootstrap, directive, "restrict")
    assert sets == {"fable-5": BitMap([base + 2])}  # the invalid record never entered the view

    def letters(events: list) -> list:
        return [
            e
            for e in events
            if e.get("key_b64") and __import__("base64").b64decode(e["key_b64"]) in (poison, user_key(base + 1))
        ]

    found = letters(await read_until(bootstrap, dead_letter_topic("impact").name, 1, lambda s: len(letters(s)) >= 2))
    by_topic = {e["topic"]: e["reason"] for e in found}
    assert set(by_topic) == {DIRECTIVES.name, USERS.name}
    assert "invalid message" in by_topic[DIRECTIVES.name]
    assert "not an ISO 3166-1 alpha-2 country code" in by_topic[USERS.name]


async def test_a_restarted_service_recovers_active_directives_and_publishes_what_changed_while_down(
    bootstrap: str, producer: AIOKafkaProducer, unique: str, tmp_path: Path
) -> None:
    base = next(_bases) * 100_000
    organisation = f"org-{unique}"
    selector = {"kind": "all_of", "of": [FOREIGN_TO_US, {"kind": "organisation", "any_of": [organisation]}]}
    settings = ImpactSettings(kafka=KafkaSettings(bootstrap=bootstrap), state_dir=tmp_path)
    directive = f"{unique}-restart"
    first = build(settings)
    await first.start()
    try:
        await send_users(producer, [user(base + 1, ["FR"], organisation=organisation)])
        await send_directive(producer, issued(directive, 1, selector, ["fable-5"]))
        await assessment_of(bootstrap, directive, "restrict")
    finally:
        await first.stop()

    await send_users(producer, [user(base + 2, ["CN"], organisation=organisation)])  # while impact is down
    second = build(settings)
    await second.start()
    try:
        assert second.directives.active[directive].sets["fable-5"] == BitMap([base + 1, base + 2])
        events = await read_until(
            bootstrap,
            IMPACT.name,
            IMPACT.partitions,
            lambda seen: any(e.get("directive_id") == directive and e["type"] == "AffectedSetDelta" for e in seen),
        )
        (delta,) = [e for e in events if e.get("directive_id") == directive and e["type"] == "AffectedSetDelta"]
        assert decode_bitmap(delta["added"]) == BitMap([base + 2]) and delta["seq"] == 1
        await send_directive(producer, issued(directive, 1, selector, ["fable-5"]))  # redelivered after restart
        marker = f"{unique}-marker"
        await send_directive(producer, issued(marker, 1, {"kind": "everyone"}, ["fable-5"]))
        await assessment_of(bootstrap, marker, "restrict")
        heads = [
            e
            for e in await read_until(
                bootstrap,
                IMPACT.name,
                IMPACT.partitions,
                lambda seen: any(e.get("directive_id") == marker for e in seen),
            )
            if e.get("directive_id") == directive and e["type"] == "ImpactAssessed"
        ]
        assert len(heads) == 1
    finally:
        await second.stop()
