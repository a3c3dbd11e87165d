"""Assessment messages (chunking, deterministic ids) and the state rebuilt from them after a restart."""

from __future__ import annotations

from datetime import UTC, datetime

from pyroaring import BitMap

from services.impact.affected import AffectedSet
from services.impact.directives import Delta
from services.impact.messages import Cause, assessment, delta_message
from services.impact.recovery import ImpactReplay
from shared.contracts.bitmaps import decode_bitmap, set_digest, union
from shared.contracts.impact import AffectedSetChunk, ImpactAssessed
from tests.unit.impact.population_builder import scope

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
FOREIGN_TO_US = {"kind": "foreign_national", "home_country": "US"}


def restrict(directive: str, revision: int, sets: dict[str, BitMap], per_chunk: int = 2) -> list:
    cause = Cause(directive, revision, "cause-1", NOW)
    return assessment(
        cause,
        "restrict",
        scope(FOREIGN_TO_US, tuple(sets)),
        AffectedSet(by_model=sets),
        {0: 10},
        ids_per_chunk=per_chunk,
    )


def test_chunks_are_numbered_across_models_in_model_order_and_every_model_has_one() -> None:
    head, *chunks = restrict("D1", 3, {"mythos-5": BitMap([1, 2, 3]), "fable-5": BitMap()})
    assert isinstance(head, ImpactAssessed) and head.chunks == 3 == len(chunks)
    assert [(c.model, c.chunk) for c in chunks] == [("fable-5", 0), ("mythos-5", 1), ("mythos-5", 2)]
    assert union(decode_bitmap(c.users) for c in chunks if c.model == "mythos-5") == BitMap([1, 2, 3])
    assert head.event_id == "impact:D1:3:restrict:assessed" and chunks[2].event_id == "impact:D1:3:restrict:chunk:2"
    assert {m.correlation_id for m in [head, *chunks]} == {"D1"}
    assert {m.causation_id for m in [head, *chunks]} == {"cause-1"}
    assert head.affected_by_model == {"mythos-5": 3, "fable-5": 0} and head.affected_users == 3


def test_replay_rebuilds_active_sets_with_deltas_and_forgets_lifted_directives() -> None:
    replay = ImpactReplay()
    for message in restrict("D1", 1, {"fable-5": BitMap([1, 2, 3])}) + restrict("D2", 2, {"fable-5": BitMap([9])}):
        replay.fold(message)
    after = BitMap([2, 3, 4])
    delta = Delta("D1", 1, 1, "fable-5", BitMap([4]), BitMap([1]), set_digest(after))
    replay.fold(delta_message(delta, None, NOW))
    replay.fold(delta_message(delta, None, NOW))  # a duplicate changes nothing
    lift = assessment(Cause("D2", 2, "c", NOW), "lift", scope(FOREIGN_TO_US), AffectedSet({"fable-5": BitMap([9])}), {})
    for message in lift:
        replay.fold(message)
    book = replay.directives
    assert set(book.active) == {"D1"} and book.active["D1"].sets == {"fable-5": BitMap([2, 3, 4])}
    assert book.active["D1"].delta_seq == 1
    assert book.is_assessed("D1", 1) and book.is_assessed("D2", 2)


def test_an_assessment_missing_chunks_is_not_counted_as_assessed() -> None:
    replay = ImpactReplay()
    head, first, _missing = restrict("D1", 1, {"fable-5": BitMap([1, 2, 3])})
    replay.fold(head)
    replay.fold(first)
    assert not replay.directives.is_assessed("D1", 1) and not replay.directives.active
    assert isinstance(first, AffectedSetChunk)
