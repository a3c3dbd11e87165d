"""One key names a directive revision and action everywhere: assessments, rollouts, notices, stores."""

from __future__ import annotations

import json
from types import SimpleNamespace

from shared.contracts.impact import AssessmentKey


def test_the_key_of_an_assessment_message_is_its_directive_revision_and_action() -> None:
    message = SimpleNamespace(directive_id="EXP-1", revision=2, action="lift")
    assert AssessmentKey.of(message) == AssessmentKey("EXP-1", 2, "lift")


def test_a_message_without_an_action_belongs_to_the_restriction() -> None:
    delta = SimpleNamespace(directive_id="EXP-1", revision=2)
    assert AssessmentKey.of(delta).action == "restrict"


def test_the_key_equals_and_hashes_as_the_plain_triple_stores_wrote_before() -> None:
    key = AssessmentKey("EXP-1", 2, "restrict")
    assert key == ("EXP-1", 2, "restrict") and {("EXP-1", 2, "restrict"): 1}[key] == 1
    assert AssessmentKey(*json.loads(json.dumps(list(key)))) == key


def test_keys_order_by_directive_then_revision_then_action() -> None:
    keys = [AssessmentKey("B", 1, "restrict"), AssessmentKey("A", 2, "restrict"), AssessmentKey("A", 1, "restrict")]
    assert sorted(keys) == [keys[2], keys[1], keys[0]]
