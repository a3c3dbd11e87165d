"""Registry deltas are told once every cluster holds a state at or after them, in either order of arrival."""

from __future__ import annotations

from pyroaring import BitMap

from services.notifier.delta_pairing import Delta, DeltaPairing
from shared.contracts.bitmaps import scope_digest
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-1", 1, "restrict")
BASE = {"fable-5": "f0", "mythos-5": "m0"}
ONE = Delta(1, "fable-5", "f1", BitMap([7]), BitMap([2]))
TWO = Delta(2, "mythos-5", "m1", BitMap([8]), BitMap())
AFTER_ONE = scope_digest({"fable-5": "f1", "mythos-5": "m0"})
AFTER_TWO = scope_digest({"fable-5": "f1", "mythos-5": "m1"})


def _told(due) -> list[tuple[int, str, dict, dict]]:
    return [
        (seq, r.causation_id, {m: list(u) for m, u in r.added.items()}, {m: list(u) for m, u in r.removed.items()})
        for seq, r in due
    ]


def test_a_delta_is_told_only_after_its_state_is_confirmed() -> None:
    pairing = DeltaPairing()
    assert pairing.assessed(KEY, BASE) == []
    assert pairing.delta(KEY, ONE) == []
    assert pairing.confirmed(KEY, scope_digest(BASE), "enforced") == []  # the state before the delta
    assert _told(pairing.confirmed(KEY, AFTER_ONE, "progress-1")) == [
        (1, "progress-1", {"fable-5": [7]}, {"fable-5": [2]})
    ]


def test_a_confirmation_before_the_delta_or_the_assessment_waits_for_them() -> None:
    pairing = DeltaPairing()
    assert pairing.confirmed(KEY, AFTER_TWO, "progress-9") == []
    assert pairing.delta(KEY, TWO) == []
    assert pairing.delta(KEY, ONE) == []  # no base digests yet: the states cannot be computed
    due = pairing.assessed(KEY, BASE)
    assert [(seq, r.causation_id) for seq, r in due] == [
        (1, "progress-9"),
        (2, "progress-9"),
    ]  # a later state confirms both


def test_a_gap_in_the_sequence_holds_later_deltas() -> None:
    pairing = DeltaPairing()
    pairing.assessed(KEY, BASE)
    pairing.delta(KEY, TWO)
    assert pairing.confirmed(KEY, AFTER_TWO, "progress") == []
    assert [seq for seq, _ in pairing.delta(KEY, ONE)] == [1, 2]


def test_a_told_delta_is_never_told_again_and_its_notices_name_the_delta() -> None:
    pairing = DeltaPairing()
    pairing.assessed(KEY, BASE)
    pairing.delta(KEY, ONE)
    [(seq, ready)] = pairing.confirmed(KEY, AFTER_ONE, "progress")
    told = {(n.notification_id, n.action, n.occasion) for n in ready.notices()}
    assert told == {
        ("EXP-1:1:restricted:7:delta-1", "restricted", "delta"),
        ("EXP-1:1:restored:2:delta-1", "restored", "delta"),
    }
    pairing.sent(KEY, seq)
    assert pairing.confirmed(KEY, AFTER_ONE, "again") == [] and pairing.ready() == []
    assert pairing.delta(KEY, ONE) == []  # a redelivered delta
