"""The dry-run API over a view held in memory: answers, lifts net of other directives, bad input named by field."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest
from pyroaring import BitMap

from services.impact.api import create_api
from services.impact.directives import Directives
from services.impact.user_columns import Population
from shared.runtime.auth import AuthSettings, Guard
from shared.runtime.health import ConsumerWatch
from tests.unit.impact.population_builder import population, scope, user

OPEN = Guard(AuthSettings(mode="off"), "impact")  # who may dry-run: test_preview_auth
FOREIGN = {"kind": "foreign_national", "home_country": "US"}


@dataclass
class FakeState:
    population: Population
    directives: Directives = field(default_factory=Directives)
    loaded: bool = True
    watch: ConsumerWatch = field(default_factory=lambda: ConsumerWatch("impact"))


def people() -> Population:
    return population(
        user(1, ["FR"], "DE"),
        user(2, ["US"], "US"),
        user(3, None, None, "employee"),
        user(4, ["CN"], "CN", "enterprise_member"),
        *(user(10 + i, ["IN"], "IN") for i in range(30)),
    )


def body(selector: dict, directive_id: str = "EXP-1", models: list[str] | None = None) -> dict:
    return {
        "directive_id": directive_id,
        "title": "Export control",
        "scope": {"models": models or ["fable-5", "mythos-5"], "selector": selector},
    }


async def post(state: FakeState, path: str, json: dict | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_api(state, OPEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://impact") as client:
        return await client.post(path, json=json)


async def test_preview_counts_by_model_country_and_account_type_with_a_sample() -> None:
    reply = await post(FakeState(people()), "/directives/preview", body(FOREIGN))
    assert reply.status_code == 200
    answer = reply.json()
    assert answer["affected_by_model"] == {"fable-5": 33, "mythos-5": 33} and answer["affected_users"] == 33
    assert answer["by_country"] == {"DE": 1, "??": 1, "CN": 1, "IN": 30}
    assert answer["by_account_type"] == {"consumer": 31, "employee": 1, "enterprise_member": 1}
    assert answer["unknown_only"] == 1
    assert answer["sample"] == [1, 3, 4, *range(10, 27)] and answer["amends_revision"] is None


async def test_preview_of_an_active_directive_shows_the_amendment_difference() -> None:
    state = FakeState(people())
    state.directives.activate("EXP-1", 1, scope(FOREIGN), {"fable-5": BitMap([1, 2])})
    answer = (
        await post(state, "/directives/preview", body({"kind": "nationality", "any_of": ["CN"]}, models=["fable-5"]))
    ).json()
    assert answer["amends_revision"] == 1
    # added: 3 (nationality unknown, restricted) and 4; removed: 1 and 2
    assert answer["added_by_model"] == {"fable-5": 2} and answer["removed_by_model"] == {"fable-5": 2}


async def test_lift_preview_restores_only_what_no_other_active_directive_covers() -> None:
    state = FakeState(people())
    state.directives.activate("A", 1, scope(FOREIGN), {"fable-5": BitMap([1, 3, 4]), "mythos-5": BitMap([1, 3, 4])})
    state.directives.activate("B", 1, scope(FOREIGN), {"fable-5": BitMap([4])})
    answer = (await post(state, "/directives/A/lift/preview")).json()
    assert answer["affected_by_model"] == {"fable-5": 2, "mythos-5": 3} and answer["sample"] == [1, 3, 4]
    assert set(state.directives.active) == {"A", "B"}  # a dry run lifts nothing


async def test_lift_preview_of_a_directive_not_active_is_404_naming_it() -> None:
    reply = await post(FakeState(people()), "/directives/NOPE/lift/preview")
    assert reply.status_code == 404 and "'NOPE'" in reply.json()["error"]


@pytest.mark.parametrize(
    ("selector", "field", "words"),
    [
        ({"kind": "religion", "any_of": ["x"]}, "scope.selector", "unknown selector kind 'religion'"),
        ({"kind": "nationality", "any_of": ["XX"]}, "scope.selector.any_of[0]", "'XX' is not an ISO 3166-1"),
        ({"kind": "residence", "any_of": ["US"], "religion": "x"}, "scope.selector.religion", "unknown attribute"),
        (
            {"kind": "all_of", "of": [FOREIGN, {"kind": "foreign_national", "home_country": "ZZ"}]},
            "scope.selector.of[1].home_country",
            "'ZZ' is not an ISO 3166-1",
        ),
    ],
    ids=["unknown attribute kind", "unknown country", "unknown field", "nested unknown country"],
)
async def test_preview_with_an_unknown_attribute_or_country_is_422_naming_the_field(
    selector: dict, field: str, words: str
) -> None:
    reply = await post(FakeState(people()), "/directives/preview", body(selector))
    assert reply.status_code == 422
    (problem,) = reply.json()["problems"]
    assert problem["field"] == field and words in problem["message"]


async def test_preview_before_the_view_caught_up_is_503_and_readyz_says_not_ready() -> None:
    state = FakeState(people(), loaded=False)
    assert (await post(state, "/directives/preview", body(FOREIGN))).status_code == 503
    transport = httpx.ASGITransport(app=create_api(state, OPEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://impact") as client:
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        state.loaded = True
        assert (await client.get("/readyz")).json() == {"ready": True, "stuck": [], "unwritten_dead_letters": 0}
        for _ in range(6):
            state.watch.failed("compliance.directives.v1", 2, 41, "OSError: disk full")
        stuck = await client.get("/readyz")
        assert stuck.status_code == 503
        assert stuck.json()["stuck"] == [
            {
                "topic": "compliance.directives.v1",
                "partition": 2,
                "offset": 41,
                "why": "failed 6 times: OSError: disk full",
            }
        ]


async def test_metrics_show_the_users_active_directives_cover_per_model_each_counted_once() -> None:
    state = FakeState(people())
    state.directives.activate("EXP-1", 1, scope(FOREIGN), {"fable-5": BitMap([1, 3, 4]), "mythos-5": BitMap([1])})
    state.directives.activate("EXP-2", 1, scope(FOREIGN), {"fable-5": BitMap([4, 10])})
    transport = httpx.ASGITransport(app=create_api(state, OPEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://impact") as client:
        text = (await client.get("/metrics")).text
        assert 'countermand_affected_users{model="fable-5"} 4.0' in text
        assert 'countermand_affected_users{model="mythos-5"} 1.0' in text
        state.directives.lift("EXP-1")
        text = (await client.get("/metrics")).text
    assert 'countermand_affected_users{model="fable-5"} 2.0' in text and 'model="mythos-5"' not in text


def holders() -> Population:
    return population(
        user(1, ["FR"], "DE", entitlements=("fable-5",)),
        user(2, ["CN"], "CN", "enterprise_member", entitlements=("fable-5", "mythos-5")),
        user(3, ["IN"], "IN"),  # covered, holds nothing: loses nothing
        user(4, ["US"], "US", entitlements=("fable-5",)),  # not covered
    )


async def test_preview_counts_who_loses_access_covered_and_entitled_by_model_country_and_account_type() -> None:
    answer = (await post(FakeState(holders()), "/directives/preview", body(FOREIGN))).json()
    assert answer["affected_by_model"] == {"fable-5": 3, "mythos-5": 3}
    assert answer["losing_by_model"] == {"fable-5": 2, "mythos-5": 1} and answer["losing_users"] == 2
    assert answer["losing_by_country"] == {"DE": 1, "CN": 1}
    assert answer["losing_by_account_type"] == {"consumer": 1, "enterprise_member": 1}
    assert answer["losing_added_by_model"] is None


async def test_preview_of_an_amendment_counts_who_newly_loses_and_who_gets_access_back() -> None:
    state = FakeState(holders())
    state.directives.activate("EXP-1", 1, scope(FOREIGN), {"fable-5": BitMap([1, 2, 3])})
    amended = body({"kind": "nationality", "any_of": ["CN", "US"]}, models=["fable-5"])
    answer = (await post(state, "/directives/preview", amended)).json()
    # added: 4 (entitled); removed: 1 (entitled) and 3 (not)
    assert answer["added_by_model"] == {"fable-5": 1} and answer["removed_by_model"] == {"fable-5": 2}
    assert answer["losing_added_by_model"] == {"fable-5": 1} and answer["losing_removed_by_model"] == {"fable-5": 1}
    assert answer["losing_by_model"] == {"fable-5": 2}
