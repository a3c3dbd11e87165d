"""Dispatch by message type: one table from message class to handler, the one way every service routes.

A subscriber decodes the topic's union of messages and calls the table; the table names, per class, the
handler or that the message is deliberately ignored. No handler names in strings, no isinstance chains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

R = TypeVar("R")


def ignored(*_: Any, **__: Any) -> None:
    """The handler of a message a consumer deliberately does nothing with."""
    return None


class Dispatch(Generic[R]):
    """Handlers keyed by message class; `dispatch(message, *args)` runs `handler(message, *args)`.

    A table of a class's methods (`{Issued: Core.on_issued}`) is called as `table.handler(message)(core,
    message, ...)`, so it can be built once, before the object it routes to exists.
    """

    def __init__(self, handlers: Mapping[type, Callable[..., R]]) -> None:
        self._handlers = dict(handlers)

    @property
    def types(self) -> frozenset[type]:
        return frozenset(self._handlers)

    def handler(self, message: Any) -> Callable[..., R]:
        """The handler of the message's class; LookupError naming the class when there is none."""
        try:
            return self._handlers[type(message)]
        except KeyError:
            raise LookupError(
                f"no handler for {type(message).__name__}; known: "
                f"{', '.join(sorted(t.__name__ for t in self._handlers))}"
            ) from None

    def __call__(self, message: Any, *args: Any, **kwargs: Any) -> R:
        return self.handler(message)(message, *args, **kwargs)
