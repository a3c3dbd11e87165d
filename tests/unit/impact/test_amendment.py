"""Amendments: the difference from the active revision, its chunks after the whole ones, and recovery from them."""

from __future__ import annotations

from datetime import UTC, datetime

from pyroaring import BitMap

from services.impact.affected import AffectedSet
from services.impact.directives import Directives
from services.impact.messages import Cause, assessment
from services.impact.recovery import ImpactReplay
from shared.contracts.bitmaps import decode_bitmap
from tests.unit.impact.population_builder import scope

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
FOREIGN = {"kind": "foreign_national", "home_country": "US"}


def amended(directives: Directives, sets: dict[str, BitMap], revision: int = 2) -> list:
    amendment = directives.amendment("D1", sets)
    return assessment(
        Cause("D1", revision, "cause-2", NOW),
        "restrict",
        scope(FOREIGN, tuple(sets)),
        AffectedSet(by_model=sets),
        {0: 10},
        ids_per_chunk=2,
        amendment=amendment,
    )


def active(sets: dict[str, BitMap]) -> Directives:
    directives = Directives()
    directives.activate("D1", 1, scope(FOREIGN, tuple(sets)), sets)
    return directives


def test_the_difference_covers_models_added_and_dropped_by_the_new_revision() -> None:
    directives = active({"fable-5": BitMap([1, 2, 3]), "lyric-4": BitMap([7])})
    amendment = directives.amendment("D1", {"fable-5": BitMap([3, 4]), "mythos-5": BitMap([5])})
    assert amendment.amended_from == 1
    assert amendment.added == {"fable-5": BitMap([4]), "lyric-4": BitMap(), "mythos-5": BitMap([5])}
    assert amendment.removed == {"fable-5": BitMap([1, 2]), "lyric-4": BitMap([7]), "mythos-5": BitMap()}
    assert Directives().amendment("D1", {"fable-5": BitMap([1])}) is None  # not active: no difference


def test_diff_chunks_follow_the_whole_ones_numbered_on_with_their_own_ids_and_counts() -> None:
    head, *chunks = amended(active({"fable-5": BitMap([1, 2, 3])}), {"fable-5": BitMap([3, 4, 5, 6])})
    assert (head.amended_from, head.chunks, head.diff_chunks) == (1, 2, 3)
    assert head.added_by_model == {"fable-5": 3} and head.removed_by_model == {"fable-5": 2}
    assert [(c.part, c.chunk, c.chunks) for c in chunks] == [
        ("whole", 0, 2),
        ("whole", 1, 2),
        ("added", 2, 5),
        ("added", 3, 5),
        ("removed", 4, 5),
    ]
    assert decode_bitmap(chunks[4].users) == BitMap([1, 2])
    assert chunks[2].event_id == "impact:D1:2:restrict:added:chunk:2" and chunks[0].event_id.endswith(":chunk:0")


def test_a_first_assessment_has_no_difference() -> None:
    head, *chunks = amended(Directives(), {"fable-5": BitMap([1])}, revision=1)
    assert head.amended_from is None and head.diff_chunks == 0 and head.added_by_model is None
    assert {c.part for c in chunks} == {"whole"}


def test_replay_takes_the_whole_set_of_an_amendment_and_waits_for_its_difference() -> None:
    previous = {"fable-5": BitMap([1, 2, 3])}
    first = assessment(Cause("D1", 1, None, NOW), "restrict", scope(FOREIGN), AffectedSet(by_model=previous), {0: 5})
    second = amended(active(previous), {"fable-5": BitMap([3, 4])})
    replay = ImpactReplay()
    for message in first + second[:-1]:  # the last diff chunk never made it out
        replay.fold(message)
    assert replay.directives.active["D1"].revision == 1 and not replay.directives.is_assessed("D1", 2)
    replay.fold(second[-1])
    assert replay.directives.active["D1"].revision == 2
    assert replay.directives.active["D1"].sets == {"fable-5": BitMap([3, 4])}
