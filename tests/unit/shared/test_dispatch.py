"""Routing by message class: each message reaches its handler, an unknown class fails naming itself."""

from __future__ import annotations

import pytest

from shared.runtime.dispatch import Dispatch, ignored


class Issued:
    pass


class Lifted:
    pass


def test_each_message_goes_to_the_handler_of_its_class_with_the_arguments() -> None:
    seen: list[tuple[str, object]] = []
    dispatch = Dispatch({Issued: lambda m, now: seen.append(("issued", now)), Lifted: ignored})
    dispatch(Issued(), 5)
    assert dispatch(Lifted(), 6) is None
    assert seen == [("issued", 5)]


def test_a_message_without_a_handler_fails_naming_its_class_and_the_known_ones() -> None:
    with pytest.raises(LookupError, match="no handler for int; known: Issued"):
        Dispatch({Issued: ignored})(3)


class Core:
    def on_issued(self, message: Issued, now: int) -> tuple[str, int]:
        return ("issued", now)


def test_a_table_of_methods_is_built_before_the_object_it_routes_to() -> None:
    rules = Dispatch({Issued: Core.on_issued})
    assert rules.handler(Issued())(Core(), Issued(), 7) == ("issued", 7)
