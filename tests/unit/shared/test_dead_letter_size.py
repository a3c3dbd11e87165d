"""A dead letter fits its topic whatever the size of the record: copies when they fit, references otherwise."""

from __future__ import annotations

import base64
import hashlib

from aiokafka import ConsumerRecord

from shared.contracts.catalogue import MAX_MESSAGE_BYTES, dead_letter_topic
from shared.contracts.deadletter import DeadLetter
from shared.runtime.deadletters import dead_letter_of, write_dead_letter
from shared.runtime.health import ConsumerWatch

LIMIT = dead_letter_topic("impact").max_message_bytes


def record(value: bytes | None, key: bytes | None = b"42", headers: list | None = None) -> ConsumerRecord:
    return ConsumerRecord("identity.users.v1", 3, 77, 0, 0, key, value, None, 1, len(value or b""), headers or [])


def size(letter: DeadLetter) -> int:
    return len(letter.model_dump_json().encode())


def test_a_small_record_is_copied_whole() -> None:
    letter = dead_letter_of(record(b"\x00poison"), "impact", ValueError("bad"))
    assert base64.b64decode(letter.value_b64) == b"\x00poison" and letter.value_omitted is None


def test_a_record_just_under_the_topic_limit_is_referred_to_and_the_letter_fits() -> None:
    value = b"\xfe" * (MAX_MESSAGE_BYTES - 100)
    letter = dead_letter_of(record(value), "impact", ValueError("bad"))
    assert letter.value_b64 is None
    assert letter.value_omitted.size == len(value)
    assert letter.value_omitted.sha256 == hashlib.sha256(value).hexdigest()
    assert base64.b64decode(letter.value_omitted.head_b64) == value[:1024]
    assert size(letter) < LIMIT // 2


def test_a_100_kb_key_and_large_headers_are_referred_to() -> None:
    key = b"k" * 100_000
    headers = [(f"h{i}", b"v" * 1000) for i in range(100)]
    letter = dead_letter_of(record(b"{}", key, headers), "impact", ValueError("bad"))
    assert letter.key_b64 is None and letter.key_omitted.size == 100_000
    assert letter.headers == {} and letter.headers_omitted is not None
    assert base64.b64decode(letter.value_b64) == b"{}"
    assert size(letter) < LIMIT // 2


def test_a_huge_reason_is_cut() -> None:
    letter = dead_letter_of(record(b"x"), "impact", ValueError("y" * 100_000))
    assert len(letter.reason) <= 2001


async def test_a_refused_copy_falls_back_to_a_reference_and_then_moves_on() -> None:
    sent: list[DeadLetter] = []

    async def refuses_copies(letter: DeadLetter) -> None:
        if letter.value_b64 is not None:
            raise RuntimeError("MessageSizeTooLargeError")
        sent.append(letter)

    watch = ConsumerWatch("impact")
    assert await write_dead_letter(refuses_copies, record(b"abc"), "impact", ValueError("bad"), watch)
    assert sent[0].value_omitted.size == 3

    async def broker_down(letter: DeadLetter) -> None:
        raise ConnectionError("broker unreachable")

    assert not await write_dead_letter(broker_down, record(b"abc"), "impact", ValueError("bad"), watch)
    assert watch.unwritten_letters == 1
