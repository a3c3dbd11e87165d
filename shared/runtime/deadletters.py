"""Dead-letter path: a message a handler cannot process goes to the service's dead-letter topic.

Validation errors (bad JSON, wrong schema) go there at once; other errors are retried a few times
with backoff first. The consumer then moves on: never an infinite retry loop. If the dead-letter
topic itself cannot be written, the error propagates so the message is redelivered, not lost.
A failing batch (batch subscriber) is redelivered, unless the middleware was made with
batches=True: then it is dead-lettered record by record, except a batch holding records of the
service's own dead-letter topic, which is redelivered: burying those again would loop.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import structlog
from faststream import BaseMiddleware
from pydantic import ValidationError

from shared.contracts.catalogue import dead_letter_topic
from shared.contracts.deadletter import DeadLetter


class Rejected(Exception):
    """A handler refuses a well-formed message for a domain reason; it is dead-lettered at once."""


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()[:5]]
        return "invalid message: " + "; ".join(parts)
    return f"{type(exc).__name__}: {exc}"


def dead_letter_of(record: Any, service: str, exc: BaseException) -> DeadLetter:
    """Describe a consumer record and the failure as a DeadLetter."""
    headers = {k: _b64(v) or "" for k, v in (getattr(record, "headers", None) or [])}
    return DeadLetter(
        producer=service, consumer=service, topic=record.topic, partition=record.partition,
        offset=max(record.offset or 0, 0), key_b64=_b64(record.key), headers=headers,
        value_b64=_b64(record.value), reason=_reason(exc),
    )


def dead_letter_middleware(service: str, retries: int = 3, backoff_s: float = 0.2, *,
                           batches: bool = False) -> type[BaseMiddleware]:
    """A broker middleware class that dead-letters what the service's handlers cannot process.

    batches: dead-letter a failing batch record by record (the audit, whose batch fails as a whole);
    otherwise a failing batch is redelivered, since its handler may have rewound the consumer itself.
    """
    topic = dead_letter_topic(service).name
    log = structlog.get_logger(service=service)

    class DeadLettering(BaseMiddleware):
        """Retry transient failures a few times, then dead-letter; dead-letter bad input at once."""

        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            for attempt in range(1, retries + 1):
                try:
                    return await call_next(msg)
                except (ValidationError, Rejected, ValueError) as exc:
                    return await self._bury(msg, exc)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a handler bug or a transient outage
                    if attempt == retries:
                        return await self._bury(msg, exc)
                    log.warning("handler failed, retrying", attempt=attempt, error=repr(exc))
                    await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
            return None

        async def _bury(self, msg: Any, exc: BaseException) -> None:
            raw = msg.raw_message
            is_batch = isinstance(raw, (tuple, list))
            records = raw if is_batch else (raw,)
            if is_batch and not batches:
                raise exc
            if any(getattr(r, "topic", None) == topic for r in records):
                # A consumer of its own dead-letter topic would feed it in a loop: redeliver instead.
                raise exc
            broker = self.context.get("broker")
            for record in records:
                letter = dead_letter_of(record, service, exc)
                log.warning("message dead-lettered", topic=letter.topic, offset=letter.offset, reason=letter.reason)
                await broker.publish(letter, topic=topic, key=service.encode())
            return None

    return DeadLettering
