"""An amendment of an active directive publishes the new whole set and the difference from the revision it replaces."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from pyroaring import BitMap

from services.impact.app import ImpactService
from shared.contracts.bitmaps import decode_bitmap, set_digest
from tests.integration.impact.conftest import _bases, impact_events, issued, send_directive, send_users, until
from tests.unit.impact.population_builder import user

pytestmark = pytest.mark.kafka


def complete(revision: int):
    def done(events: list) -> bool:
        heads = [e for e in events if e["type"] == "ImpactAssessed" and e["revision"] == revision]
        chunks = {e["chunk"] for e in events if e["type"] == "AffectedSetChunk" and e["revision"] == revision}
        return bool(heads) and len(chunks) == heads[0]["chunks"] + heads[0]["diff_chunks"]

    return done


def parts(events: list, revision: int) -> dict[tuple[str, str], BitMap]:
    found: dict[tuple[str, str], BitMap] = {}
    for chunk in (e for e in events if e["type"] == "AffectedSetChunk" and e["revision"] == revision):
        key = (chunk["part"], chunk["model"])
        found[key] = found.get(key, BitMap()) | decode_bitmap(chunk["users"])
    return found


async def test_an_amendment_narrower_and_wider_publishes_the_whole_set_and_what_it_adds_and_removes(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str, to_lift: list
) -> None:
    base = next(_bases) * 100_000
    org = f"org-{unique}"
    french_in_de, french_in_us, chinese, german = base + 1, base + 2, base + 3, base + 4
    await send_users(
        producer,
        [
            user(french_in_de, ["FR"], "DE", organisation=org),
            user(french_in_us, ["FR"], "US", organisation=org),
            user(chinese, ["CN"], "US", organisation=org),
            user(german, ["DE"], "DE", organisation=org),
        ],
    )
    in_org = {"kind": "organisation", "any_of": [org]}
    directive = f"{unique}-amended"
    rev1 = {"kind": "all_of", "of": [in_org, {"kind": "nationality", "any_of": ["FR"]}]}
    await send_directive(producer, issued(directive, 1, rev1, ["fable-5"]))
    to_lift.append((directive, 2))
    await impact_events(bootstrap, directive, complete(1))

    # narrower (French only if resident in DE) and wider (Chinese too, and a second model)
    rev2 = {
        "kind": "all_of",
        "of": [
            in_org,
            {
                "kind": "any_of",
                "of": [
                    {"kind": "nationality", "any_of": ["CN"]},
                    {
                        "kind": "all_of",
                        "of": [{"kind": "nationality", "any_of": ["FR"]}, {"kind": "residence", "any_of": ["DE"]}],
                    },
                ],
            },
        ],
    }
    await send_directive(producer, issued(directive, 2, rev2, ["fable-5", "mythos-5"]))
    events = await impact_events(bootstrap, directive, complete(2))

    (head,) = [e for e in events if e["type"] == "ImpactAssessed" and e["revision"] == 2]
    now = BitMap([french_in_de, chinese])
    assert head["amended_from"] == 1
    assert head["added_by_model"] == {"fable-5": 1, "mythos-5": 2}
    assert head["removed_by_model"] == {"fable-5": 1, "mythos-5": 0}
    assert head["chunks"] == 2 and head["diff_chunks"] == 4
    assert parts(events, 2) == {
        ("whole", "fable-5"): now,
        ("whole", "mythos-5"): now,
        ("added", "fable-5"): BitMap([chinese]),
        ("added", "mythos-5"): now,
        ("removed", "fable-5"): BitMap([french_in_us]),
        ("removed", "mythos-5"): BitMap(),
    }
    chunks = [e for e in events if e["type"] == "AffectedSetChunk" and e["revision"] == 2]
    whole_chunks = [c for c in chunks if c["part"] == "whole"]
    diff_chunks = [c for c in chunks if c["part"] != "whole"]
    assert sorted(c["chunk"] for c in whole_chunks) == [0, 1] and {c["chunks"] for c in whole_chunks} == {2}
    assert sorted(c["chunk"] for c in diff_chunks) == [2, 3, 4, 5] and {c["chunks"] for c in diff_chunks} == {6}
    assert head["model_digests"] == {"fable-5": set_digest(now), "mythos-5": set_digest(now)}
    await until(lambda: service.directives.active[directive].revision == 2, "revision 2 to be active")
    assert service.directives.active[directive].sets == {"fable-5": now, "mythos-5": now}

    first = next(e for e in events if e["type"] == "ImpactAssessed" and e["revision"] == 1)
    assert first["amended_from"] is None and first["diff_chunks"] == 0  # a first assessment carries no difference
