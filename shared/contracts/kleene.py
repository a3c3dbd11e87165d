"""Three-valued (Kleene) logic of selectors, per user: True, False, or None when an attribute is unknown.

Unknown stays unknown through all-of / any-of / not until the whole selector is decided (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Iterable

Truth = bool | None


def all_of(truths: Iterable[Truth]) -> Truth:
    found = list(truths)
    if False in found:
        return False
    return None if None in found else True


def any_of(truths: Iterable[Truth]) -> Truth:
    found = list(truths)
    if True in found:
        return True
    return None if None in found else False


def negate(truth: Truth) -> Truth:
    return None if truth is None else not truth
