"""Renders a notice's subject, plain-text body and HTML body from the jinja2 templates under templates/<locale>/."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateError, meta

from services.notifier.notices import Notice
from services.notifier.recipients import counts

TEMPLATES = Path(__file__).parent / "templates"
FALLBACK = "en"
ACTIONS = ("restricted", "restored")
RENDERED_KEPT = 1024  # renderings kept for notices that differ only by recipient (a batch shares a handful)


class Unrenderable(ValueError):
    """A template failed for one notice: that notice fails, the others go out."""


class Wording:
    """Subject and bodies per locale and action; a locale without templates falls back to its language, then English."""

    def __init__(self, folder: Path = TEMPLATES) -> None:
        # Plain text is not HTML-escaped; the HTML layout is. StrictUndefined makes a template typo fail loudly.
        self._text = Environment(
            loader=FileSystemLoader(folder),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        html = Environment(
            loader=FileSystemLoader(folder),
            undefined=StrictUndefined,
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.locales = sorted(p.name for p in folder.iterdir() if p.is_dir())
        self._html = html.get_template("notice.html.j2")
        self._cache: dict[tuple[str, str, str], Template] = {}
        self._personal: dict[tuple[str, str], bool] = {}  # (locale, action) -> its templates name the recipient
        self._rendered: dict[tuple[object, ...], tuple[str, str, str]] = {}

    def locale_for(self, wanted: str) -> str:
        """The locale whose templates are used: `wanted`, its language (fr-CA -> fr), or English."""
        normal = wanted.replace("_", "-").lower()
        for candidate in (normal, normal.split("-")[0]):
            if candidate in self.locales:
                return candidate
        return FALLBACK

    def render(self, notice: Notice, locale: str = FALLBACK) -> tuple[str, str, str]:
        """(subject, text, html) of one notice in the recipient's language; Unrenderable names what failed."""
        chosen = self.locale_for(locale)
        name = f"{notice.action}_digest" if notice.members else notice.action
        # A digest counts its organisation's members: its words are its own, as are those of a template naming
        # the recipient; every other notice of the same revision, models and occasion reads the same.
        personal = bool(notice.members) or self._names_recipient(chosen, name)
        shared = None if personal else self._shared_key(chosen, name, notice)
        if shared is not None and shared in self._rendered:
            return self._rendered[shared]
        values = {
            "directive_id": notice.directive_id,
            "revision": notice.revision,
            "models": list(notice.models),
            "recipient": notice.recipient,
            "occasion": notice.occasion,
            "counts": counts(notice),
            "members": len(notice.members),
        }
        try:
            subject = self._template(chosen, name, "subject").render(values).strip()
            text = self._template(chosen, name, "body").render(values).strip() + "\n"
            html = self._html.render(locale=chosen, subject=subject, blocks=_blocks(text))
        except TemplateError as exc:
            raise Unrenderable(f"template {chosen}/{name} failed to render: {exc}") from exc
        words = (subject, text, html)
        if shared is not None:
            if len(self._rendered) >= RENDERED_KEPT:
                self._rendered.clear()
            self._rendered[shared] = words
        return words

    @staticmethod
    def _shared_key(locale: str, name: str, notice: Notice) -> tuple[object, ...]:
        return (locale, name, notice.directive_id, notice.revision, notice.models, notice.occasion)

    def _names_recipient(self, locale: str, action: str) -> bool:
        """Whether the subject or body template of (locale, action) uses `recipient`: when neither does, every
        recipient of a notice gets the same words, rendered once (a missing template counts as naming it, so
        that its error is raised for each notice)."""
        key = (locale, action)
        if key not in self._personal:
            try:
                names: set[str] = set()
                for part in ("subject", "body"):
                    source = self._text.loader.get_source(self._text, f"{locale}/{action}.{part}.j2")[0]  # type: ignore[union-attr]
                    names |= meta.find_undeclared_variables(self._text.parse(source))
                self._personal[key] = "recipient" in names
            except TemplateError:
                self._personal[key] = True
        return self._personal[key]

    def _template(self, locale: str, action: str, part: str) -> Template:
        key = (locale, action, part)
        if key not in self._cache:
            self._cache[key] = self._text.get_template(f"{locale}/{action}.{part}.j2")
        return self._cache[key]


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """Paragraphs of the text body; runs of "  - item" lines become lists."""
    blocks: list[tuple[str, list[str]]] = []
    for paragraph in text.strip().split("\n\n"):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        for is_item, group in groupby(lines, key=lambda line: line.startswith("- ")):
            run = list(group)
            blocks.append(("list", [line[2:] for line in run]) if is_item else ("text", run))
    return blocks
