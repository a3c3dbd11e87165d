"""Request validation: every problem named by its dotted field path."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.contracts.directives import DirectiveRequest
from shared.runtime.problems import Problem, problems_of


def request(**scope: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    body.update(scope)
    return {"directive_id": "EXP-1", "title": "t", "scope": body}


def problems_for(data: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        DirectiveRequest.model_validate(data)
    return problems_of(caught.value)


def test_a_valid_request_passes() -> None:
    assert DirectiveRequest.model_validate(request()).scope.models == ["fable-5"]


def test_an_empty_model_list_names_scope_models() -> None:
    assert [p.field for p in problems_for(request(models=[]))] == ["scope.models"]


def test_an_invalid_country_names_the_field_and_the_code() -> None:
    [problem] = problems_for(request(selector={"kind": "foreign_national", "home_country": "XX"}))
    assert problem.field == "scope.selector.home_country"
    assert "'XX'" in problem.message and "ISO 3166" in problem.message


def test_an_unknown_selector_kind_is_named() -> None:
    [problem] = problems_for(request(selector={"kind": "religion"}))
    assert problem.field == "scope.selector"
    assert "unknown selector kind 'religion'" in problem.message


def test_nested_selector_paths_skip_the_kind_tags() -> None:
    selector = {"kind": "all_of", "of": [{"kind": "not", "of": {"kind": "residence", "any_of": ["US", "ZZ"]}}]}
    [problem] = problems_for(request(selector=selector))
    assert problem.field == "scope.selector.of[0].of.any_of[1]"


def test_every_problem_is_listed() -> None:
    data = request(models=[], enforcement_deadline_s=0)
    data["surprise"] = True
    del data["title"]
    assert {p.field for p in problems_for(data)} == {
        "scope.models",
        "scope.enforcement_deadline_s",
        "surprise",
        "title",
    }


def test_a_bad_directive_id_is_named() -> None:
    data = request()
    data["directive_id"] = "no spaces allowed"
    assert [p.field for p in problems_for(data)] == ["directive_id"]


def test_a_window_that_ends_before_it_starts_names_the_scope() -> None:
    data = request(effective_from="2026-12-02T00:00:00Z", expires_at="2026-12-01T00:00:00Z")
    [problem] = problems_for(data)
    assert problem.field == "scope" and "expires_at must be later" in problem.message
