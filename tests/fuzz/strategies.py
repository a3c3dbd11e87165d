"""Strategies shared by the fuzz tests: JSON of any shape, and directives close to valid ones (a valid body with
one part replaced), which reach deeper than random bytes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["US", "NO", "fable-5", "foreign_national", "restrict", "", "\x00", "9" * 40, "é"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)

VALID: dict[str, Any] = {
    "directive_id": "EXP-1",
    "title": "Export control",
    "authority": "Order 2026/17",
    "scope": {
        "models": ["fable-5", "mythos-5"],
        "selector": {
            "kind": "all_of",
            "of": [
                {"kind": "foreign_national", "home_country": "US"},
                {"kind": "not", "of": {"kind": "account_type", "any_of": ["employee"]}},
            ],
        },
        "unknown_attribute": "restrict",
        "enforcement_deadline_s": 120,
    },
}


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


@st.composite
def near_valid(draw: st.DrawFn, seed: Any) -> Any:
    """`seed` with one value replaced, removed or given an extra field."""
    body = copy.deepcopy(seed)
    path = draw(st.sampled_from(_paths(seed)))
    if not path:
        return draw(json_values)
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "remove", "extra"]))
    if action == "remove" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "extra" and isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(json_values)
    else:
        parent[path[-1]] = draw(json_values)
    return body


directive_bodies = near_valid(VALID) | json_values
