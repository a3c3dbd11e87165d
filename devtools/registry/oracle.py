"""Brute-force reference evaluation of a directive selector, one user at a time, in plain Python.

Deliberately simple and independent of the columnar (numpy) evaluation it checks: tests and the demo
compare the impact service's affected sets against `affected_users`.

Three-valued (Kleene) logic: True, False, or None when an attribute the selector needs is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter

from shared.contracts.directives import Selector
from shared.contracts.kleene import Truth, all_of, any_of, negate

_SELECTOR = TypeAdapter(Selector)


def affected_users(
    selector: Any, users: Iterable[Mapping[str, Any] | BaseModel], unknown_attribute: str = "restrict"
) -> set[int]:
    """Ids of the users a directive with this selector covers: True, or unknown when it restricts."""
    if unknown_attribute not in ("restrict", "allow"):
        raise ValueError(f"unknown_attribute: must be 'restrict' or 'allow', got {unknown_attribute!r}")
    parsed = _SELECTOR.validate_python(selector)
    affected = set()
    for user in users:
        record = user.model_dump() if isinstance(user, BaseModel) else user
        truth = evaluate(parsed, record)
        if truth is True or (truth is None and unknown_attribute == "restrict"):
            affected.add(record["user_id"])
    return affected


def evaluate(selector: Any, user: Mapping[str, Any]) -> Truth:
    """Whether one user matches the selector: True, False or None (unknown)."""
    kind = selector.kind
    if kind == "everyone":
        return True
    if kind == "foreign_national":
        return _unknown_or(user["nationalities"], lambda held: selector.home_country not in held)
    if kind == "nationality":
        return _unknown_or(user["nationalities"], lambda held: _overlap(held, selector.any_of))
    if kind == "residence":
        return _unknown_or(user["residence"], lambda country: country in selector.any_of)
    if kind == "account_type":
        return user["account_type"] in selector.any_of
    if kind == "organisation":
        return user.get("organisation") is not None and user["organisation"] in selector.any_of
    if kind == "entitlement":
        return _overlap(user.get("entitlements") or [], selector.any_of)
    if kind == "all_of":
        return all_of([evaluate(clause, user) for clause in selector.of])
    if kind == "any_of":
        return any_of([evaluate(clause, user) for clause in selector.of])
    if kind == "not":
        return negate(evaluate(selector.of, user))
    raise ValueError(f"selector.kind: unsupported {kind!r}")


def _unknown_or(value: Any, test: Any) -> Truth:
    return None if value is None else bool(test(value))


def _overlap(held: Iterable[str], wanted: Iterable[str]) -> bool:
    return any(item in wanted for item in held)
