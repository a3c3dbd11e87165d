"""Limits on what intake accepts, defined once and used by every reader and writer of a directive.

They are derived so that anything within them, and everything a directive becomes downstream (its event, its
impact assessment carrying the scope, per-model chunks and commands), fits one Kafka record of
MAX_MESSAGE_BYTES with its envelope: `worst_case_event_bytes()` bounds it and tests build that worst case.
"""

from __future__ import annotations

import re
from typing import Any

# The largest record any topic takes (max.message.bytes; the local broker's message.max.bytes too).
MAX_MESSAGE_BYTES = 2 * 1024 * 1024

# Text, in characters.
DIRECTIVE_ID_CHARS = 128
MODEL_NAME_CHARS = 64
TITLE_CHARS = 500
AUTHORITY_CHARS = 500
REASON_CHARS = 1000
ORGANISATION_CHARS = 200  # as in the user registry's organisation field
IDEMPOTENCY_KEY_CHARS = 255
SUBJECT_CHARS = 255  # an authenticated caller's subject (a token's `sub`, an API key's subject)
MAX_APPROVERS = 9  # approvals a proposal can ask for (four eyes: 1 by default)

# Lists.
MAX_MODELS = 256  # a directive's models, and an entitlement clause's
MAX_COUNTRIES = 249  # nationalities or residences in one clause: ISO 3166-1 has 249 codes
MAX_ORGANISATIONS = 256  # organisations in one clause
MAX_ACCOUNT_TYPES = 3

# The selector. Its depth stays far below what any reader of a directive can nest: jiter (pydantic's
# validate_json, every Kafka consumer) stops at 200 JSON levels, pydantic-core at about 255 Python levels,
# orjson (audit) at 1024, the json module and the impact evaluator at Python's recursion limit. A clause is
# at most two JSON levels (an object and its `of` list), a directive event adds three.
SELECTOR_DEPTH = 32  # clauses on the deepest path, the outermost counting as 1
SELECTOR_CLAUSES = 256  # clauses in all
SELECTOR_VALUES = 512  # list entries across every clause

# Raw input (HTTP bodies and directive files), checked before anything is parsed.
MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 2 * SELECTOR_DEPTH + 16  # nesting of a JSON document before it is parsed
MAX_NUMBER_CHARS = 32  # a JSON number's characters (Python refuses ints beyond 4300 digits, with a ValueError)

_JSON_CHAR_BYTES = 6  # the most one character can take in JSON: a control character as \u00XX
_CLAUSE_BYTES = 64  # a clause's own JSON without its values: {"kind":"foreign_national","home_country":"US"},
_PER_MODEL_BYTES = 4 * (MODEL_NAME_CHARS + 6) + 64 + 3 * 24  # model in scope, four per-model maps, digests


def worst_case_event_bytes() -> int:
    """An upper bound on the JSON of the largest directive event or impact assessment these limits allow."""
    selector = SELECTOR_CLAUSES * _CLAUSE_BYTES + SELECTOR_VALUES * (ORGANISATION_CHARS * _JSON_CHAR_BYTES + 3)
    # title, authority, lift or emergency reason, ids, and who proposed and approved it
    text = (
        TITLE_CHARS + AUTHORITY_CHARS + 2 * REASON_CHARS + 2 * DIRECTIVE_ID_CHARS + (1 + MAX_APPROVERS) * SUBJECT_CHARS
    ) * _JSON_CHAR_BYTES
    by_country = 250 * 24  # an assessment's breakdown by residence: every country and "??"
    return selector + MAX_MODELS * _PER_MODEL_BYTES + text + by_country + 4096  # + the envelope and scalars


assert worst_case_event_bytes() < MAX_MESSAGE_BYTES // 2, "the limits must leave room under MAX_MESSAGE_BYTES"
assert worst_case_event_bytes() < MAX_BODY_BYTES, "whatever the limits allow must be sendable in one body"

_LIST_LIMITS = {
    "nationality": (MAX_COUNTRIES, "MAX_COUNTRIES"),
    "residence": (MAX_COUNTRIES, "MAX_COUNTRIES"),
    "organisation": (MAX_ORGANISATIONS, "MAX_ORGANISATIONS"),
    "entitlement": (MAX_MODELS, "MAX_MODELS"),
    "account_type": (MAX_ACCOUNT_TYPES, "MAX_ACCOUNT_TYPES"),
}


_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class LimitExceeded(ValueError):
    """Input beyond one of the limits; the message names the limit."""


def check_list(items: Any, limit: int, name: str) -> Any:
    """The list unchanged, or LimitExceeded naming the limit (checked before its items are validated)."""
    if isinstance(items, (list, tuple)) and len(items) > limit:
        raise LimitExceeded(f"{len(items)} items; at most {limit} ({name})")
    return items


def check_selector(selector: Any) -> Any:
    """The raw selector unchanged, or LimitExceeded naming the limit it passes.

    Walks the raw data (dicts from JSON or YAML, or selector models) without recursion and stops at the first
    limit passed, so a selector nested 10,000 levels deep is refused before pydantic descends into it.
    """
    pending = [(selector, 1, "selector")]
    clauses = values = 0
    while pending:
        node, depth, path = pending.pop()
        if depth > SELECTOR_DEPTH:
            raise LimitExceeded(f"the selector is nested more than {SELECTOR_DEPTH} clauses deep (SELECTOR_DEPTH)")
        clauses += 1
        if clauses > SELECTOR_CLAUSES:
            raise LimitExceeded(f"the selector has more than {SELECTOR_CLAUSES} clauses (SELECTOR_CLAUSES)")
        kind, any_of, of = _parts(node)
        if isinstance(any_of, (list, tuple)):
            default = (MAX_ORGANISATIONS, "MAX_ORGANISATIONS")  # a kind of any type: pydantic names it later
            limit, name = _LIST_LIMITS.get(kind, default) if isinstance(kind, str) else default
            if len(any_of) > limit:
                raise LimitExceeded(f"{path}.any_of has {len(any_of)} items; at most {limit} ({name})")
            values += len(any_of)
            if values > SELECTOR_VALUES:
                raise LimitExceeded(f"the selector lists more than {SELECTOR_VALUES} values in all (SELECTOR_VALUES)")
        if isinstance(of, (list, tuple)):
            if len(of) > SELECTOR_CLAUSES:
                raise LimitExceeded(f"the selector has more than {SELECTOR_CLAUSES} clauses (SELECTOR_CLAUSES)")
            pending.extend((child, depth + 1, f"{path}.of[{i}]") for i, child in enumerate(of))
        elif of is not None:
            pending.append((of, depth + 1, f"{path}.of"))
    return selector


def _parts(node: Any) -> tuple[Any, Any, Any]:
    if isinstance(node, dict):
        return node.get("kind"), node.get("any_of"), node.get("of")
    return getattr(node, "kind", None), getattr(node, "any_of", None), getattr(node, "of", None)


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON document nests more than `limit` arrays and objects, read without parsing it."""
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
