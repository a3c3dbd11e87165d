"""Dead-letter path: a record a handler cannot process goes to the service's dead-letter topic, with its
reason; the consumer moves on, never retrying forever. The rules are in shared/README.md (Dead letters).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from faststream import BaseMiddleware
from pydantic import ValidationError

from shared.contracts.catalogue import dead_letter_topic
from shared.contracts.deadletter import DeadLetter, OmittedBytes
from shared.runtime.health import ConsumerWatch
from shared.runtime.metrics import DEAD_LETTERS

# What a letter may carry as copies, in base64 characters: well under the dead-letter topic's max.message.bytes
# (the envelope, reason and JSON quoting come on top), so producing a letter never fails for its size.
COPY_CHARS = dead_letter_topic("any").max_message_bytes // 2
KEY_CHARS = HEADER_CHARS = 64 * 1024
HEAD_BYTES = 1024
REASON_CHARS = 2000


class Rejected(Exception):
    """A handler refuses a well-formed message for a domain reason; it is dead-lettered at once."""


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()[:5]]
        reason = "invalid message: " + "; ".join(parts)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS] + "…"


def omitted(raw: bytes) -> OmittedBytes:
    """A reference to bytes too large to copy: size, SHA-256 and the first bytes."""
    return OmittedBytes(size=len(raw), sha256=hashlib.sha256(raw).hexdigest(), head_b64=_b64(raw[:HEAD_BYTES]) or "")


def _copy_or_refer(raw: bytes | None, limit: int) -> tuple[str | None, OmittedBytes | None]:
    if raw is None:
        return None, None
    return (_b64(raw), None) if 4 * ((len(raw) + 2) // 3) <= limit else (None, omitted(raw))


def dead_letter_of(record: Any, service: str, exc: BaseException, *, copies: bool = True) -> DeadLetter:
    """Describe a consumer record and the failure as a DeadLetter that always fits its topic.

    Key, headers and value are copied when they fit (`copies=False`: never) and referred to otherwise.
    """
    pairs = list(getattr(record, "headers", None) or [])
    headers = {k: _b64(v) or "" for k, v in pairs}
    header_chars = sum(len(k) + len(v) for k, v in headers.items())
    key_b64, key_ref = _copy_or_refer(record.key, KEY_CHARS if copies else -1)
    headers_ref = None
    if header_chars > (HEADER_CHARS if copies else -1) and headers:
        headers_ref = omitted("".join(f"{k}={v}\n" for k, v in headers.items()).encode())
        headers, header_chars = {}, 0
    room = COPY_CHARS - len(key_b64 or "") - header_chars
    value_b64, value_ref = _copy_or_refer(record.value, room if copies else -1)
    return DeadLetter(
        producer=service,
        consumer=service,
        topic=record.topic,
        partition=record.partition,
        offset=max(record.offset or 0, 0),
        key_b64=key_b64,
        headers=headers,
        value_b64=value_b64,
        reason=_reason(exc),
        key_omitted=key_ref,
        headers_omitted=headers_ref,
        value_omitted=value_ref,
    )


async def write_dead_letter(
    publish: Callable[[DeadLetter], Awaitable[Any]],
    record: Any,
    service: str,
    exc: BaseException,
    watch: ConsumerWatch | None = None,
) -> bool:
    """Produce the letter of a record (a reference-only letter if the copy is refused); True once written.

    False when neither could be written: the failure is logged and counted on the watch, and the caller
    moves on (the record stays on its topic).
    """
    log = structlog.get_logger(service=service)
    failure = ""
    for letter in (dead_letter_of(record, service, exc), dead_letter_of(record, service, exc, copies=False)):
        try:
            await publish(letter)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # too large after all, authorisation, broker unreachable
            failure = repr(error)
            continue
        DEAD_LETTERS.labels(service, letter.topic).inc()
        log.warning(
            "message dead-lettered",
            topic=letter.topic,
            partition=letter.partition,
            offset=letter.offset,
            reason=letter.reason,
        )
        return True
    (watch or ConsumerWatch(service)).letter_unwritten(record.topic, record.partition, record.offset, failure)
    return False


def dead_letter_middleware(
    service: str, retries: int = 3, backoff_s: float = 0.2, *, batches: bool = False, watch: ConsumerWatch | None = None
) -> type[BaseMiddleware]:
    """A broker middleware class that dead-letters what the service's handlers cannot process.

    batches: dead-letter a failing batch record by record (the audit, whose batch fails as a whole);
    otherwise a failing batch is redelivered, since its handler may have rewound the consumer itself.
    watch: where failures per record and unwritten letters are counted (readiness reports it).
    """
    topic = dead_letter_topic(service).name
    log = structlog.get_logger(service=service)
    watch = watch or ConsumerWatch(service)

    class DeadLettering(BaseMiddleware):
        """Retry transient failures a few times, then dead-letter; dead-letter bad input at once."""

        reached_handler = False

        async def after_processed(
            self, exc_type: Any = None, exc_val: BaseException | None = None, exc_tb: Any = None
        ) -> bool:
            """A record FastStream could not even parse (it fails before consume_scope) is dead-lettered too;
            True tells FastStream the failure was handled, so the record is acknowledged, not redelivered."""
            if exc_val is None or self.reached_handler or not isinstance(exc_val, Exception):
                return False
            records = self.msg if isinstance(self.msg, (tuple, list)) else (self.msg,)
            if any(getattr(r, "topic", None) == topic for r in records):
                return False
            await self._write(records, exc_val)
            return True

        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            self.reached_handler = True
            for attempt in range(1, retries + 1):
                try:
                    result = await call_next(msg)
                except (ValidationError, Rejected, ValueError) as exc:
                    return await self._bury(msg, exc)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a handler bug or a transient outage
                    _note(msg, watch.failed, repr(exc))
                    if attempt == retries:
                        return await self._bury(msg, exc)
                    log.warning("handler failed, retrying", attempt=attempt, error=repr(exc))
                    await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
                else:
                    _note(msg, watch.passed)
                    return result
            return None

        async def _bury(self, msg: Any, exc: BaseException) -> None:
            raw = msg.raw_message
            is_batch = isinstance(raw, (tuple, list))
            records = raw if is_batch else (raw,)
            if is_batch and not batches:
                raise exc
            if any(getattr(r, "topic", None) == topic for r in records):
                # A consumer of its own dead-letter topic (the audit, which records raw bytes and fails only
                # when its store does) would feed it in a loop: redeliver instead; the watch counts the tries.
                raise exc
            await self._write(records, exc)
            return None

        async def _write(self, records: Any, exc: BaseException) -> None:
            broker = self.context.get("broker")

            async def publish(letter: DeadLetter) -> None:
                await broker.publish(letter, topic=topic, key=service.encode())

            for record in records:
                await write_dead_letter(publish, record, service, exc, watch)
                watch.passed(record.topic, record.partition, record.offset)

    return DeadLettering


def _note(msg: Any, note: Callable[..., None], *args: Any) -> None:
    raw = msg.raw_message
    for record in raw if isinstance(raw, (tuple, list)) else (raw,):
        if hasattr(record, "topic"):
            note(record.topic, record.partition, record.offset, *args)
