"""Records with headers that are not UTF-8 reach the handlers instead of stalling their consumer (why:
shared/README.md, Record headers). Checked against faststream==0.7.8 by tests/unit/shared/test_record_headers.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.structs import ConsumerRecord


def _utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def readable(record: ConsumerRecord) -> ConsumerRecord:
    """The record itself when every header value is UTF-8, else a copy with them decoded leniently."""
    headers = tuple(record.headers or ())
    if all(_utf8(value) for _, value in headers):
        return record
    mended = tuple((name, (value or b"").decode("utf-8", "replace").encode("utf-8")) for name, value in headers)
    return dataclasses.replace(record, headers=mended)


async def tolerant_parser(message: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """A FastStream custom parser (`KafkaBroker(parser=...)`) for single records and batches alike."""
    if isinstance(message, tuple):
        mended: Any = tuple(readable(record) for record in message)
        if all(a is b for a, b in zip(mended, message, strict=True)):
            return await original(message)
    else:
        mended = readable(message)
        if mended is message:
            return await original(message)
    parsed = await original(mended)
    parsed.raw_message = message  # handlers, dead letters and the audit see the bytes as they were written
    return parsed


async def raw_values(message: Any) -> list[bytes | None]:
    """A batch decoder for handlers that read the records themselves: the values as written, no re-parsing
    (FastStream's batch decoder parses every record again, binary headers included)."""
    return [record.value for record in message.raw_message]
