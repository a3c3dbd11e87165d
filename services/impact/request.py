"""What a person submits for a dry run (HTTP body or CLI file), and bad input described field by field."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, Field, ValidationError

from shared.contracts.directives import DirectiveId, DirectiveScope, Selector
from shared.contracts.envelope import Message

SELECTOR_KINDS = frozenset(
    get_args(member.model_fields["kind"].annotation)[0] for member in get_args(get_args(Selector)[0])
)


class PreviewRequest(Message):
    """A directive as intake's POST /directives takes it; the preview only reads the view."""

    directive_id: DirectiveId
    title: str = Field(..., min_length=1, max_length=500, description="Human title.",
                       examples=["Export control: frontier models"])
    authority: str = Field("", max_length=500, description="Issuing authority or legal basis.",
                           examples=["Order 2026/17"])
    scope: DirectiveScope = Field(..., description="What the directive covers.")


class Problem(BaseModel):
    """One thing wrong with a request, naming the field (dotted path)."""

    field: str = Field(..., examples=["scope.selector.any_of[0]"])
    message: str = Field(..., examples=["'XX' is not an ISO 3166-1 alpha-2 country code"])


def problems(errors: list[dict[str, Any]], drop_prefix: tuple[str, ...] = ()) -> list[Problem]:
    """pydantic errors as problems; `drop_prefix` removes leading path parts such as FastAPI's 'body'."""
    found = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if tuple(loc[:len(drop_prefix)]) == drop_prefix:
            loc = loc[len(drop_prefix):]
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
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown selector kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if error.get("type") == "extra_forbidden":
        return f"unknown attribute {error['loc'][-1]!r}"
    return message
