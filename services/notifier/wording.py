"""Renders a notice's subject and body from the jinja2 templates under templates/."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.notifier.notices import Notice

TEMPLATES = Path(__file__).parent / "templates"


class Wording:
    """Subject and body per notice action (restricted, restored); English for now."""

    def __init__(self, folder: Path = TEMPLATES) -> None:
        # Plain-text email, so no HTML autoescaping; StrictUndefined makes a template typo fail loudly.
        self._env = Environment(
            loader=FileSystemLoader(folder),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._subjects = {a: self._env.get_template(f"{a}.subject.j2") for a in ("restricted", "restored")}
        self._bodies = {a: self._env.get_template(f"{a}.body.j2") for a in ("restricted", "restored")}

    def render(self, notice: Notice) -> tuple[str, str]:
        """(subject, body) of one notice."""
        values = {
            "directive_id": notice.directive_id,
            "revision": notice.revision,
            "models": list(notice.models),
            "recipient": notice.recipient,
        }
        subject = self._subjects[notice.action].render(values).strip()
        return subject, self._bodies[notice.action].render(values).strip() + "\n"
