"""Fuzzed Kafka records through the decode path the services use (the tolerant header parser, FastStream's JSON
decoding, the topic's message union, bitmaps and chunk reassembly): a message, or a ValueError -- what the
dead-letter middleware buries at once with its reason -- and a dead letter of any record always fits its topic."""

from __future__ import annotations

import json
import typing
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream._internal._compat import json_loads
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic_core import PydanticUndefined
from pyroaring import BitMap

from shared.contracts.bitmaps import decode_bitmap, encode_bitmap
from shared.contracts.catalogue import DATA_TOPICS, Topic, dead_letter_topic
from shared.contracts.chunks import ChunkedSets
from shared.runtime.deadletters import dead_letter_of
from shared.runtime.record_headers import readable
from tests.fuzz.strategies import VALID, near_valid


def _classes(topic: Topic) -> tuple[type, ...]:
    message = topic.message
    if typing.get_origin(message) is typing.Annotated:
        message = typing.get_args(message)[0]
    return typing.get_args(message) or (message,)


def _seed(cls: type) -> dict[str, Any]:
    """A message of `cls` from its fields' documented examples and defaults (valid for most types)."""
    seed: dict[str, Any] = {}
    for name, field in cls.model_fields.items():  # type: ignore[attr-defined]
        if field.examples:
            seed[name] = field.examples[0]
        elif field.default not in (PydanticUndefined, None):
            seed[name] = field.default
    if "scope" in cls.model_fields:  # type: ignore[attr-defined]
        seed.update(scope=VALID["scope"], title=VALID["title"])
    return json.loads(json.dumps(seed, default=str))


SEEDS = [(topic, _seed(cls)) for topic in DATA_TOPICS for cls in _classes(topic)]
topics = st.sampled_from(DATA_TOPICS)


def decode(topic: Topic, value: bytes) -> Any:
    """What a subscriber does with a record's value: FastStream's JSON decoding, then the topic's union; any bitmap
    it carries is decoded as the handler would. Only ValueError (ValidationError is one) may come out."""
    message = topic.adapter.validate_python(json_loads(value))
    for name in ("users", "added", "removed"):
        text = getattr(message, name, None)
        if isinstance(text, str):
            decode_bitmap(text)
    return message


def decoded_or_refused(topic: Topic, value: bytes) -> None:
    try:
        decode(topic, value)
    except ValueError as exc:
        assert str(exc)


@given(topics, st.binary(max_size=4096))
@example(DATA_TOPICS[0], b"[" * 100_000)
@example(DATA_TOPICS[0], b"\xff\xfe")
@example(DATA_TOPICS[0], b"")
def test_any_bytes_decode_or_are_refused(topic: Topic, value: bytes) -> None:
    decoded_or_refused(topic, value)


@given(st.sampled_from(SEEDS).flatmap(lambda seed: st.tuples(st.just(seed[0]), near_valid(seed[1]))))
def test_every_message_type_with_one_part_changed_decodes_or_is_refused(case: tuple[Topic, Any]) -> None:
    topic, body = case
    decoded_or_refused(topic, json.dumps(body).encode())


@given(st.sampled_from(SEEDS), st.sampled_from(["users", "added", "removed"]), st.binary(max_size=300))
def test_a_corrupt_bitmap_is_refused(seed: tuple[Topic, dict], field: str, raw: bytes) -> None:
    import base64

    topic, body = seed
    decoded_or_refused(topic, json.dumps({**body, field: base64.b64encode(raw).decode()}).encode())


@given(st.lists(st.tuples(st.integers(-3, 12), st.integers(-3, 12)), max_size=20), st.integers(-3, 12))
def test_chunks_in_any_order_and_count_reassemble_or_are_refused(parts: list[tuple[int, int]], total: int) -> None:
    sets = ChunkedSets()
    for index, chunks in parts:
        try:
            sets.add(index, chunks, "fable-5", decode_bitmap(encode_bitmap(BitMap([index % 7]))))
        except ValueError as exc:
            assert "chunk" in str(exc)
    try:
        sets.announce(total)
    except ValueError as exc:
        assert "chunks" in str(exc)
    assert sets.complete in (True, False) and len(sets.missing) <= max(total, 0)
    sets.sets(["fable-5"])


records = st.builds(
    ConsumerRecord,
    topic=st.sampled_from([t.name for t in DATA_TOPICS]),
    partition=st.integers(0, 5),
    offset=st.integers(-1, 2**40),
    timestamp=st.integers(0, 2**41),
    timestamp_type=st.just(0),
    key=st.none() | st.binary(max_size=200),
    value=st.none() | st.binary(max_size=2000),
    checksum=st.none(),
    serialized_key_size=st.just(-1),
    serialized_value_size=st.just(-1),
    headers=st.lists(st.tuples(st.text(max_size=30), st.none() | st.binary(max_size=100)), max_size=6).map(tuple),
)


@given(records, st.integers(0, 3 * 1024 * 1024))
@example(None, 0)
def test_a_dead_letter_of_any_record_fits_its_topic(record: ConsumerRecord | None, big: int) -> None:
    if record is None:
        record = ConsumerRecord("t", 0, 0, 0, 0, b"k" * 70_000, b"v" * (3 * 1024 * 1024), None, -1, -1, ())
    elif big:
        record = ConsumerRecord(**{**record.__dict__, "value": b"\x00" * big})
    mended = readable(record)
    assert all(isinstance(v, bytes) for _, v in mended.headers if v is not None)
    letter = dead_letter_of(record, "agent", ValueError("fuzz"))
    assert len(letter.model_dump_json().encode()) < dead_letter_topic("agent").max_message_bytes
