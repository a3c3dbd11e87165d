"""Subjects and bodies rendered from the templates name the models and the directive."""

from __future__ import annotations

import pytest

from services.notifier.notices import Notice
from services.notifier.wording import Wording


def _notice(action: str, models: tuple[str, ...]) -> Notice:
    return Notice(f"EXP-9:3:{action}:5", 5, "EXP-9", 3, action, models)  # type: ignore[arg-type]


def test_restricted_notice_names_models_and_directive() -> None:
    subject, body, html = Wording().render(_notice("restricted", ("fable-5", "mythos-5")))
    assert subject == "Access to fable-5, mythos-5 has been restricted"
    assert "EXP-9" in body and "revision 3" in body
    assert "  - fable-5\n  - mythos-5\n" in body
    assert "no longer has access" in body
    assert "<li><code>fable-5</code></li>" in html and 'lang="en"' in html


def test_a_french_recipient_reads_french_and_a_regional_locale_uses_its_language() -> None:
    for locale in ("fr", "fr-CA", "fr_BE"):
        subject, body, html = Wording().render(_notice("restricted", ("fable-5",)), locale)
        assert subject == "L'accès à fable-5 a été restreint", locale
        assert "au modèle suivant" in body and 'lang="fr"' in html


def test_an_unknown_locale_falls_back_to_english() -> None:
    wording = Wording()
    assert wording.locale_for("tlh") == "en" and wording.locale_for("") == "en"
    subject, _, _ = wording.render(_notice("restored", ("fable-5",)), "tlh-KX")
    assert subject == "Access to fable-5 has been restored"


def test_a_template_that_fails_to_render_names_the_locale_and_action(tmp_path) -> None:
    import shutil

    from services.notifier.wording import TEMPLATES, Unrenderable

    shutil.copytree(TEMPLATES, tmp_path / "t")
    (tmp_path / "t" / "de").mkdir()
    for part in ("subject", "body"):
        (tmp_path / "t" / "de" / f"restricted.{part}.j2").write_text("{{ no_such_value }}")
    wording = Wording(tmp_path / "t")
    with pytest.raises(Unrenderable, match="de/restricted"):
        wording.render(_notice("restricted", ("fable-5",)), "de")
    assert wording.render(_notice("restricted", ("fable-5",)), "en")[0].startswith("Access")


def test_restored_notice_says_access_is_back() -> None:
    subject, body, _ = Wording().render(_notice("restored", ("fable-5",)))
    assert subject == "Access to fable-5 has been restored"
    assert "EXP-9" in body and "has been lifted" in body
    assert "following model:" in body
    assert "restricted" not in subject


def test_a_restored_notice_of_an_amendment_or_delta_says_the_directive_no_longer_restricts() -> None:
    changed = Notice("EXP-9:3:restored:5:d4", 5, "EXP-9", 3, "restored", ("fable-5",), "delta")
    _, body, _ = Wording().render(changed)
    assert "no longer restricts your account" in body and "has been lifted" not in body
    _, corps, _ = Wording().render(changed, "fr")
    assert "ne restreint plus votre compte" in corps


def test_an_entitlement_granted_later_is_told_it_is_not_available_because_of_the_directive() -> None:
    granted = Notice("EXP-9:3:restricted:5:e", 5, "EXP-9", 3, "restricted", ("fable-5",), "entitled")
    _, body, _ = Wording().render(granted)
    assert "is not available to you because of directive EXP-9" in body and "  - fable-5\n" in body
    _, corps, _ = Wording().render(granted, "fr")
    assert "qui ne vous est pas disponible" in corps and "EXP-9" in corps


def test_recipients_of_one_notice_share_its_words_unless_a_template_names_the_recipient(tmp_path) -> None:
    import shutil

    from services.notifier.wording import TEMPLATES

    def for_user(user: int) -> Notice:
        return Notice(f"EXP-9:3:restricted:{user}", user, "EXP-9", 3, "restricted", ("fable-5",))

    wording = Wording()
    assert wording.render(for_user(1)) is wording.render(for_user(2))  # rendered once for the batch
    assert wording.render(for_user(1), "fr") != wording.render(for_user(1))  # per locale
    other = Notice("EXP-9:3:restricted:1", 1, "EXP-9", 3, "restricted", ("mythos-5",))
    assert "mythos-5" in wording.render(other)[0]  # per set of models
    lifted = Notice("EXP-9:3:restored:1", 1, "EXP-9", 3, "restored", ("fable-5",))
    no_longer = Notice("EXP-9:3:restored:2:d4", 2, "EXP-9", 3, "restored", ("fable-5",), "delta")
    assert wording.render(lifted)[1] != wording.render(no_longer)[1]  # per occasion (a lift, a delta)

    shutil.copytree(TEMPLATES, tmp_path / "t")
    (tmp_path / "t" / "en" / "restricted.body.j2").write_text("Account {{ recipient }}: {{ models | join(', ') }}")
    personal = Wording(tmp_path / "t")
    assert personal.render(for_user(1))[1] == "Account 1: fable-5\n"
    assert personal.render(for_user(2))[1] == "Account 2: fable-5\n"
