"""Bad input described field by field: pydantic errors as {field, message} with dotted paths."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, Field, ValidationError

from shared.contracts.directives import Clause

SELECTOR_KINDS = frozenset(
    get_args(member.model_fields["kind"].annotation)[0] for member in get_args(get_args(Clause)[0])
)
_QUIET_TYPES = ("missing", "extra_forbidden", "model_type")  # the value adds nothing to these messages


class Problem(BaseModel):
    """One thing wrong with a request, naming the field (dotted path)."""

    field: str = Field(..., examples=["scope.selector.any_of[0]"])
    message: str = Field(..., examples=["'XX' is not an ISO 3166-1 alpha-2 country code"])


def problems(errors: list[dict[str, Any]], drop_prefix: tuple[str, ...] = ()) -> list[Problem]:
    """pydantic errors as problems; `drop_prefix` removes leading path parts such as FastAPI's 'body'."""
    found = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if tuple(loc[: len(drop_prefix)]) == drop_prefix:
            loc = loc[len(drop_prefix) :]
        found.append(Problem(field=field_path(loc), message=_message(error)))
    return found


def problems_of(exc: ValidationError) -> list[Problem]:
    """The problems of a pydantic validation error."""
    return problems(exc.errors())


def field_path(loc: list[Any]) -> str:
    """Dotted path of an error location, without the selector kind tags pydantic inserts."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        previous = loc[i - 1] if i else None
        if part in SELECTOR_KINDS and (previous in ("selector", "of") or isinstance(previous, int)):
            continue  # the union member's tag, not a field the user wrote
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "(body)"


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error.get("type") == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown selector kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if error.get("type") == "extra_forbidden":
        return f"unknown attribute {error['loc'][-1]!r}"
    if "input" in error and error.get("type") not in _QUIET_TYPES:
        value = error["input"]
        if isinstance(value, (str, int, float, bool)) and repr(value) not in message and len(repr(value)) <= 80:
            message = f"{message} (got {value!r})"
    return message
