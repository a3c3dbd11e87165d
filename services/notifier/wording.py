"""Renders a notice's subject, plain-text body and HTML body from the jinja2 templates under templates/<locale>/."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateError

from services.notifier.notices import Notice
from services.notifier.recipients import counts

TEMPLATES = Path(__file__).parent / "templates"
FALLBACK = "en"
ACTIONS = ("restricted", "restored")


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
        values = {
            "directive_id": notice.directive_id,
            "revision": notice.revision,
            "models": list(notice.models),
            "recipient": notice.recipient,
            "occasion": notice.occasion,
            "counts": counts(notice),
            "members": len(notice.members),
        }
        name = f"{notice.action}_digest" if notice.members else notice.action
        try:
            subject = self._template(chosen, name, "subject").render(values).strip()
            text = self._template(chosen, name, "body").render(values).strip() + "\n"
            html = self._html.render(locale=chosen, subject=subject, blocks=_blocks(text))
        except TemplateError as exc:
            raise Unrenderable(f"template {chosen}/{name} failed to render: {exc}") from exc
        return subject, text, html

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
