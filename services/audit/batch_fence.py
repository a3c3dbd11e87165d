"""Where the audit reaches into FastStream's messages: checked against faststream==0.7.8.

A batch KafkaMessage holds the aiokafka ConsumerRecords as `raw_message`; a middleware is made per message as
`cls(msg, context=ContextRepo)` with the broker in the context (the dead-letter path publishes through it).
tests/unit/audit/test_batch_fence.py fails loudly if an upgrade changes either.
"""

from __future__ import annotations

from typing import Any

from faststream._internal.context.repository import ContextRepo

CHECKED_AGAINST = {"faststream": "0.7.8"}


def records_of(message: Any) -> tuple[Any, ...]:
    """The aiokafka ConsumerRecords of a batch message, as fetched."""
    return tuple(message.raw_message)


def middleware_for(middleware_class: type, message: Any, broker: Any) -> Any:
    """A broker middleware over one message, made the way FastStream makes it (with the broker in its context)."""
    return middleware_class(message, context=ContextRepo({"broker": broker}))
