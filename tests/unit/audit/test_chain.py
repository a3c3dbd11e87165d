"""The hash chain is deterministic and verification names the first broken entry."""

from __future__ import annotations

import dataclasses
from itertools import pairwise

from services.audit.chain import GENESIS, canonical, entry_hash, fresh, link, verify
from services.audit.record import Record, envelope_of
from tests.unit.audit.records import directive_story


def chain(count: int = 5) -> list:
    return link(directive_story("EXP-1", notices=count - 3), GENESIS, 1)


def test_hash_is_deterministic_and_depends_on_the_previous_hash() -> None:
    record = Record("t", 0, 7, b"k", b"v", (("h", b"1"),), 123)
    assert entry_hash(GENESIS, record) == entry_hash(GENESIS, record)
    assert entry_hash(GENESIS, record) != entry_hash("1" * 64, record)
    assert len(entry_hash(GENESIS, record)) == 64


def test_kafka_timestamp_is_not_hashed_but_every_other_field_is() -> None:
    base = Record("t", 0, 7, b"k", b"v", (("h", b"1"),), 123)
    assert entry_hash(GENESIS, base) == entry_hash(GENESIS, dataclasses.replace(base, kafka_timestamp=9))
    variants = [
        dict(topic="u"),
        dict(partition=1),
        dict(offset=8),
        dict(key=None),
        dict(key=b""),
        dict(value=None),
        dict(value=b""),
        dict(headers=()),
        dict(headers=(("h", None),)),
    ]
    hashes = {entry_hash(GENESIS, dataclasses.replace(base, **v)) for v in variants}
    assert len(hashes) == len(variants) and entry_hash(GENESIS, base) not in hashes


def test_length_prefixes_keep_field_boundaries_apart() -> None:
    left = Record("ab", 0, 0, b"c", b"")
    right = Record("a", 0, 0, b"bc", b"")
    assert canonical(left) != canonical(right)


def test_canonical_encoding_is_the_documented_layout() -> None:
    encoded = canonical(Record("t", 1, 2, None, b"v", (("h", b"x"),)))
    assert encoded == (
        b"\x00\x00\x00\x01t"
        + (1).to_bytes(8, "big")
        + (2).to_bytes(8, "big")
        + b"\xff\xff\xff\xff"
        + b"\x00\x00\x00\x01v"
        + b"\x00\x00\x00\x01"
        + b"\x00\x00\x00\x01h"
        + b"\x00\x00\x00\x01x"
    )


def test_first_entry_links_to_genesis_and_each_entry_to_its_predecessor() -> None:
    entries = chain()
    assert entries[0].prev_hash == GENESIS and [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in pairwise(entries))


def test_intact_chain_verifies_with_its_head_hash() -> None:
    entries = chain()
    verdict = verify(entries)
    assert verdict.intact and verdict.checked == 5 and verdict.head_hash == entries[-1].hash


def test_a_modified_value_is_named_by_its_seq() -> None:
    entries = chain()
    tampered = dataclasses.replace(entries[2].record, value=entries[2].record.value.replace(b"0.21", b"9.99"))
    entries[2] = dataclasses.replace(entries[2], record=tampered)
    verdict = verify(entries)
    assert (verdict.broken_seq, verdict.checked) == (3, 2) and "modified" in verdict.reason


def test_a_deleted_entry_breaks_the_chain_at_the_next_one() -> None:
    entries = chain()
    del entries[1]
    verdict = verify(entries)
    assert verdict.broken_seq == 3 and "prev_hash" in verdict.reason


def test_a_deleted_first_entry_is_detected() -> None:
    assert verify(chain()[1:]).broken_seq == 2


def test_reordered_entries_break_the_chain_at_the_first_moved_one() -> None:
    entries = chain()
    entries[1], entries[3] = entries[3], entries[1]
    assert verify(entries).broken_seq == 4


def test_swapped_contents_under_the_same_seqs_are_detected() -> None:
    entries = chain()
    second, fourth = entries[1], entries[3]
    entries[1] = dataclasses.replace(fourth, seq=2)
    entries[3] = dataclasses.replace(second, seq=4)
    assert verify(entries).broken_seq == 2


def test_a_rewritten_envelope_column_is_detected() -> None:
    entries = chain()
    entries[0] = dataclasses.replace(entries[0], envelope=envelope_of(entries[1].record.value))
    assert verify(entries).broken_seq == 1


def test_poison_and_tombstone_values_are_chained_with_an_empty_envelope() -> None:
    entries = link([Record("t", 0, 0, b"1", None), Record("t", 0, 1, b"2", b"\xff not json")], GENESIS, 1)
    assert [e.envelope.type for e in entries] == [None, None]
    assert verify(entries).intact


def test_fresh_drops_positions_already_seen_and_repeats_within_a_batch() -> None:
    a, b = Record("t", 0, 1, None, b"a"), Record("t", 0, 2, None, b"b")
    assert list(fresh([a, b, a], {("t", 0, 2)})) == [a]


def test_a_checkpoint_anchors_the_chain_against_truncation_and_rewriting() -> None:
    entries = chain()
    anchor = (4, entries[3].hash)
    assert verify(entries, anchor).intact
    cut = verify(entries[:3], anchor)
    assert cut.broken_seq == 4 and "cut short" in cut.reason
    rewritten = link([dataclasses.replace(e.record, value=b"forged") for e in entries], GENESIS, 1)
    assert verify(rewritten).intact and verify(rewritten, anchor).broken_seq == 4
