"""Directives the demo, the end-to-end tests and the benchmarks run: the mission from its one YAML file, and
the other scopes they share.
"""

from __future__ import annotations

from typing import Any

import yaml

from devtools import ROOT
from shared.contracts.directives import DirectiveScope

MISSION_FILE = ROOT / "deploy" / "directives" / "mission.yaml"


def mission_body() -> dict[str, Any]:
    """The mission directive as intake takes it (`countermand directive issue deploy/directives/mission.yaml`)."""
    return yaml.safe_load(MISSION_FILE.read_text())


def mission_scope() -> DirectiveScope:
    """The mission's scope: fable-5 and mythos-5 for every foreign national of the US, unknown restricted."""
    return DirectiveScope.model_validate(mission_body()["scope"])


MISSION = mission_scope()
# A selector of three clauses (residence, not employees, nationality or entitlement), for evaluation timing.
THREE_CLAUSES = DirectiveScope(
    models=["fable-5", "mythos-5"],
    unknown_attribute="restrict",
    selector={
        "kind": "all_of",
        "of": [
            {"kind": "residence", "any_of": ["US", "CA", "GB"]},
            {"kind": "not", "of": {"kind": "account_type", "any_of": ["employee"]}},
            {
                "kind": "any_of",
                "of": [
                    {"kind": "nationality", "any_of": ["CN", "RU", "IR"]},
                    {"kind": "entitlement", "any_of": ["mythos-5"]},
                ],
            },
        ],
    },
)
# A second order overlapping the mission (fable-5 for Chinese nationals): a lift of one keeps the other's pairs.
OVERLAP = {
    "directive_id": "E2E-OVERLAP-CN",
    "title": "Overlapping order: fable-5 for Chinese nationals",
    "scope": {
        "models": ["fable-5"],
        "selector": {"kind": "nationality", "any_of": ["CN"]},
        "enforcement_deadline_s": 120,
    },
}
