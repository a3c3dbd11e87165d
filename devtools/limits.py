"""Directives at the limits of shared.contracts.limits, and one past each, for unit and end-to-end tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from shared.contracts import limits as L
from shared.contracts.countries import ALPHA_2

SERVED = ("fable-5", "mythos-5", "lyric-4")  # the demo clusters' models, so the directive reaches every cluster


def model_names(count: int) -> list[str]:
    """Distinct model names, the demo ones first, the last one as long as a name may be."""
    names = list(SERVED) + [f"limit-model-{i:04d}" for i in range(count - len(SERVED))]
    names[-1] = names[-1].ljust(L.MODEL_NAME_CHARS, "x")
    return names[:count]


def organisations(count: int) -> list[str]:
    return [f"org-{i:04d}".ljust(L.ORGANISATION_CHARS, "o") for i in range(count)]


def not_chain(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    """A selector `depth` clauses deep: depth - 1 `not`s around the leaf (an even count changes nothing)."""
    selector = leaf
    for _ in range(depth - 1):
        selector = {"kind": "not", "of": selector}
    return selector


def selector_at_limits() -> dict[str, Any]:
    """Every selector limit reached at once: SELECTOR_DEPTH deep, SELECTOR_CLAUSES clauses, SELECTOR_VALUES values,
    a clause of MAX_COUNTRIES countries and one of MAX_ORGANISATIONS organisations of ORGANISATION_CHARS each.

    Every clause but the deepest one is true for whoever the deepest one covers, so the whole selector covers
    exactly the foreign nationals of the US: enforceable, and checkable against a plain selector.
    """
    countries = sorted(ALPHA_2)[: L.MAX_COUNTRIES]
    foreign = {"kind": "foreign_national", "home_country": "US"}
    residences = L.SELECTOR_VALUES - len(countries) - L.MAX_ORGANISATIONS - L.MAX_ACCOUNT_TYPES
    clauses = [
        not_chain(L.SELECTOR_DEPTH - 1, foreign),  # an even number of nots: SELECTOR_DEPTH under the all_of
        {"kind": "any_of", "of": [foreign, {"kind": "nationality", "any_of": countries}]},
        {"kind": "not", "of": {"kind": "organisation", "any_of": organisations(L.MAX_ORGANISATIONS)}},
        {"kind": "any_of", "of": [foreign, {"kind": "residence", "any_of": countries[:residences]}]},
        {"kind": "account_type", "any_of": ["consumer", "enterprise_member", "employee"]},
    ]
    selector = {"kind": "all_of", "of": clauses}
    clauses.extend([{"kind": "everyone"}] * (L.SELECTOR_CLAUSES - count_clauses(selector)))
    return selector


def count_clauses(selector: dict[str, Any]) -> int:
    pending, count = [selector], 0
    while pending:
        node = pending.pop()
        count += 1
        of = node.get("of")
        pending.extend(of if isinstance(of, list) else [of] if of else [])
    return count


def directive_at_limits(directive_id: str) -> dict[str, Any]:
    """A directive request with every limit reached at once (the id padded to DIRECTIVE_ID_CHARS)."""
    return {
        "directive_id": directive_id.ljust(L.DIRECTIVE_ID_CHARS, "0"),
        "title": "Limits: " + "t" * (L.TITLE_CHARS - 8),
        "authority": "a" * L.AUTHORITY_CHARS,
        "scope": {"models": model_names(L.MAX_MODELS), "selector": selector_at_limits(), "enforcement_deadline_s": 120},
    }


def _set(path: tuple, value: Any) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        target = body
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def past_each_limit(directive_id: str) -> dict[str, tuple[dict[str, Any], str]]:
    """Per limit, a directive one past it (everything else within the limits) and the name its refusal gives."""
    base = {
        "directive_id": directive_id,
        "title": "one past a limit",
        "scope": {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}},
    }

    def with_(change: Callable[[dict], None]) -> dict[str, Any]:
        body = copy.deepcopy(base)
        change(body)
        return body

    def selector(value: dict) -> Callable[[dict], None]:
        return _set(("scope", "selector"), value)

    countries = sorted(ALPHA_2)
    return {
        "MAX_MODELS": (with_(_set(("scope", "models"), model_names(L.MAX_MODELS + 1))), "MAX_MODELS"),
        "MAX_COUNTRIES": (with_(selector({"kind": "nationality", "any_of": countries + ["US"]})), "MAX_COUNTRIES"),
        "MAX_ORGANISATIONS": (
            with_(selector({"kind": "organisation", "any_of": organisations(L.MAX_ORGANISATIONS + 1)})),
            "MAX_ORGANISATIONS",
        ),
        "MAX_ACCOUNT_TYPES": (
            with_(selector({"kind": "account_type", "any_of": ["consumer", "employee", "consumer", "employee"]})),
            "MAX_ACCOUNT_TYPES",
        ),
        "SELECTOR_DEPTH": (with_(selector(not_chain(L.SELECTOR_DEPTH + 1, {"kind": "everyone"}))), "SELECTOR_DEPTH"),
        "SELECTOR_CLAUSES": (
            with_(selector({"kind": "any_of", "of": [{"kind": "everyone"}] * L.SELECTOR_CLAUSES})),
            "SELECTOR_CLAUSES",
        ),
        "SELECTOR_VALUES": (
            with_(
                selector(
                    {
                        "kind": "any_of",
                        "of": [
                            {"kind": "organisation", "any_of": organisations(L.MAX_ORGANISATIONS)},
                            {"kind": "organisation", "any_of": organisations(L.SELECTOR_VALUES - L.MAX_ORGANISATIONS)},
                            {"kind": "organisation", "any_of": organisations(1)},
                        ],
                    }
                )
            ),
            "SELECTOR_VALUES",
        ),
        "DIRECTIVE_ID_CHARS": (with_(_set(("directive_id",), "D" * (L.DIRECTIVE_ID_CHARS + 1))), "128"),
        "MODEL_NAME_CHARS": (with_(_set(("scope", "models"), ["m" * (L.MODEL_NAME_CHARS + 1)])), "64"),
        "TITLE_CHARS": (with_(_set(("title",), "t" * (L.TITLE_CHARS + 1))), str(L.TITLE_CHARS)),
        "AUTHORITY_CHARS": (with_(_set(("authority",), "a" * (L.AUTHORITY_CHARS + 1))), str(L.AUTHORITY_CHARS)),
        "ORGANISATION_CHARS": (
            with_(selector({"kind": "organisation", "any_of": ["o" * (L.ORGANISATION_CHARS + 1)]})),
            str(L.ORGANISATION_CHARS),
        ),
    }


def deep_directive_json(directive_id: str, depth: int) -> bytes:
    """A directive whose selector is `depth` clauses deep, as JSON text (json.dumps would recurse too deep)."""
    selector = '{"kind":"not","of":' * (depth - 1) + '{"kind":"everyone"}' + "}" * (depth - 1)
    return (
        f'{{"directive_id":"{directive_id}","title":"deep","scope":{{"models":["fable-5"],"selector":{selector}}}}}'
    ).encode()
