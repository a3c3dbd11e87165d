"""Subjects and bodies rendered from the templates name the models and the directive."""

from __future__ import annotations

from services.notifier.notices import Notice
from services.notifier.wording import Wording


def _notice(action: str, models: tuple[str, ...]) -> Notice:
    return Notice(f"EXP-9:3:{action}:5", 5, "EXP-9", 3, action, models)  # type: ignore[arg-type]


def test_restricted_notice_names_models_and_directive() -> None:
    subject, body = Wording().render(_notice("restricted", ("fable-5", "mythos-5")))
    assert subject == "Access to fable-5, mythos-5 has been restricted"
    assert "EXP-9" in body and "revision 3" in body
    assert "  - fable-5\n  - mythos-5\n" in body
    assert "no longer has access" in body


def test_restored_notice_says_access_is_back() -> None:
    subject, body = Wording().render(_notice("restored", ("fable-5",)))
    assert subject == "Access to fable-5 has been restored"
    assert "EXP-9" in body and "has been lifted" in body
    assert "following model:" in body
    assert "restricted" not in subject
