"""The directive limits: at each limit accepted and readable everywhere, one past it refused naming it."""

from __future__ import annotations

import json
import time

import orjson
import pytest
from pydantic import ValidationError

from devtools.limits import directive_at_limits, not_chain, past_each_limit
from devtools.registry.oracle import affected_users
from services.impact.affected import assess
from shared.contracts import limits as L
from shared.contracts.bitmaps import set_digest
from shared.contracts.catalogue import DIRECTIVES, IMPACT
from shared.contracts.countries import ALPHA_2
from shared.contracts.directives import DirectiveIssued, DirectiveRequest
from shared.contracts.impact import ImpactAssessed
from shared.runtime.problems import problems_of
from tests.unit.impact.population_builder import population, scope, user

FOREIGN = {"kind": "foreign_national", "home_country": "US"}


def issued(request: dict) -> DirectiveIssued:
    parsed = DirectiveRequest.model_validate(request)
    return DirectiveIssued(
        producer="intake",
        directive_id=parsed.directive_id,
        revision=1,
        title=parsed.title,
        authority=parsed.authority,
        scope=parsed.scope,
        idempotency_key="k" * 255,
        request_digest="0" * 64,
    )


def assessment(event: DirectiveIssued) -> ImpactAssessed:
    """The largest assessment the directive can get: every per-model map full, an amendment's included."""
    models = event.scope.models
    return ImpactAssessed(
        producer="impact",
        directive_id=event.directive_id,
        revision=2,
        action="restrict",
        scope=event.scope,
        affected_by_model={m: 2**32 - 1 for m in models},
        affected_users=2**32 - 1,
        by_country={c: 2**32 - 1 for c in [*sorted(ALPHA_2), "??"]},
        model_digests={m: set_digest([]) for m in models},
        digest="f" * 64,
        registry_offsets={p: 2**62 for p in range(64)},
        chunks=10_000,
        amended_from=1,
        added_by_model={m: 2**32 - 1 for m in models},
        removed_by_model={m: 2**32 - 1 for m in models},
        diff_chunks=10_000,
    )


def refusal(request: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        DirectiveRequest.model_validate(request)
    found = problems_of(caught.value)
    return " ".join(f"{p.field}: {p.message}" for p in found)


def worst_text(chars: int) -> str:
    return "\x01" * chars  # a control character: six bytes in JSON, the most a character can take


def test_a_directive_at_every_limit_at_once_is_accepted_and_every_reader_parses_it() -> None:
    event = issued(directive_at_limits("LIMITS"))
    wire = event.model_dump_json().encode()
    assert DIRECTIVES.adapter.validate_json(wire) == event  # jiter: every Kafka consumer
    assert DirectiveIssued.model_validate(orjson.loads(wire)) == event  # audit
    assert DirectiveIssued.model_validate(json.loads(wire)) == event  # the json module
    assert IMPACT.adapter.validate_json(assessment(event).model_dump_json()).scope == event.scope


def test_the_directive_at_every_limit_covers_exactly_what_its_deepest_clause_says() -> None:
    users = [user(1, ["US"]), user(2, ["CN"]), user(3, None), user(4, []), user(5, ["US", "FR"])]
    limits = DirectiveRequest.model_validate(directive_at_limits("LIMITS")).scope
    assert affected_users(limits.selector, users) == affected_users(FOREIGN, users) == {2, 3, 4}
    view = population(*users)
    assert set(assess(view, scope(limits.selector.model_dump())).by_model["fable-5"]) == {2, 3, 4}


def test_the_worst_case_directive_and_its_assessment_fit_one_record() -> None:
    request = directive_at_limits("LIMITS")
    request["title"], request["authority"] = worst_text(L.TITLE_CHARS), worst_text(L.AUTHORITY_CHARS)
    for clause in request["scope"]["selector"]["of"]:
        if clause["kind"] == "not" and clause["of"]["kind"] == "organisation":
            clause["of"]["any_of"] = [
                worst_text(L.ORGANISATION_CHARS - 4) + f"{i:04d}" for i in range(L.MAX_ORGANISATIONS)
            ]
    event = issued(request)
    sizes = [len(event.model_dump_json()), len(assessment(event).model_dump_json())]
    assert max(sizes) <= L.worst_case_event_bytes() < L.MAX_MESSAGE_BYTES // 2, sizes
    assert len(json.dumps(request, separators=(",", ":"))) < L.MAX_BODY_BYTES


@pytest.mark.parametrize("limit", sorted(past_each_limit("PAST")))
def test_one_past_each_limit_is_refused_naming_the_limit(limit: str) -> None:
    body, named = past_each_limit("PAST")[limit]
    assert named in refusal(body)


@pytest.mark.parametrize("depth", [250, 10_000])
def test_a_deep_selector_is_refused_naming_the_depth_limit_without_recursing(depth: int) -> None:
    body = {
        "directive_id": "DEEP",
        "title": "t",
        "scope": {"models": ["fable-5"], "selector": not_chain(depth, FOREIGN)},
    }
    assert "SELECTOR_DEPTH" in refusal(body)
    assert "SELECTOR_DEPTH" in refusal(
        {**body, "scope": {**body["scope"], "selector": {"kind": "all_of", "of": [not_chain(depth, FOREIGN)]}}}
    )


def test_a_deep_directive_record_on_the_topic_is_a_validation_error_not_a_recursion_error() -> None:
    selector = '{"kind":"not","of":' * 10_000 + '{"kind":"everyone"}' + "}" * 10_000
    record = (
        '{"type":"DirectiveIssued","producer":"x","directive_id":"D","revision":1,"title":"t",'
        f'"scope":{{"models":["fable-5"],"selector":{selector}}}}}'
    )
    with pytest.raises(ValidationError):
        DIRECTIVES.adapter.validate_json(record)


def test_the_selector_depth_limit_reaches_every_reader() -> None:
    at_limit = {
        "directive_id": "D",
        "title": "t",
        "scope": {"models": ["fable-5"], "selector": not_chain(L.SELECTOR_DEPTH, FOREIGN)},
    }
    event = issued(at_limit)
    assert DIRECTIVES.adapter.validate_json(event.model_dump_json()) == event
    assert affected_users(event.scope.selector, [user(1, ["CN"])]) in (set(), {1})
    assert not L.json_depth_exceeds(event.model_dump_json())  # a body at the limit passes the raw check
    assert "SELECTOR_DEPTH" in refusal(
        {**at_limit, "scope": {"models": ["fable-5"], "selector": not_chain(L.SELECTOR_DEPTH + 1, FOREIGN)}}
    )


@pytest.mark.parametrize("where", ["models", "nationality", "organisation", "entitlement", "clauses"])
def test_a_list_of_100000_elements_is_one_problem_naming_the_limit(where: str) -> None:
    many = 100_000
    selector = {
        "nationality": {"kind": "nationality", "any_of": ["CN"] * many},
        "organisation": {"kind": "organisation", "any_of": ["org"] * many},
        "entitlement": {"kind": "entitlement", "any_of": ["fable-5"] * many},
        "clauses": {"kind": "any_of", "of": [FOREIGN] * many},
    }.get(where, FOREIGN)
    body = {
        "directive_id": "MANY",
        "title": "t",
        "scope": {"models": ["fable-5"] * (many if where == "models" else 1), "selector": selector},
    }
    started = time.perf_counter()
    with pytest.raises(ValidationError) as caught:
        DirectiveRequest.model_validate(body)
    assert time.perf_counter() - started < 1.0
    [problem] = problems_of(caught.value)
    assert "100000 items" in problem.message and "(MAX_" in problem.message or "SELECTOR_CLAUSES" in problem.message


def test_raw_json_depth_is_measured_without_parsing_and_ignores_brackets_in_strings() -> None:
    assert not L.json_depth_exceeds('{"a": "[[[[[[[[[[\\"[[[["}', 1)
    assert L.json_depth_exceeds("[[[1]]]", 2) and not L.json_depth_exceeds("[[[1]]]", 3)
    assert L.json_depth_exceeds("[" * 100_000)
