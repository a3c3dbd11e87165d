"""The report as one self-contained HTML file (no script, no network: styles and the chart inline)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.audit.report_model import DirectiveReport

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["j2", "html"])
)
BAR_PX = 400


def render_html(report: DirectiveReport) -> str:
    """The HTML report of a directive report."""
    clusters = [c for c in report.clusters if c.action == "restrict"] or report.clusters
    restrict = [a for a in report.assessments if a.action == "restrict"]
    notices = [n for n in report.notices if n.action == "restricted"]
    return _TEMPLATES.get_template("report.html.j2").render(
        r=report,
        clusters=report.clusters,
        bars=_bars(clusters),
        affected=restrict[-1].affected_users if restrict else 0,
        delivered=notices[-1].delivered if notices else 0,
    )


def _bars(clusters: list) -> list[dict]:
    longest = max((c.time_to_enforce_s or 0 for c in clusters), default=0) or 1
    return [
        {
            "cluster": c.cluster,
            "revision": c.revision,
            "label": f"{c.cluster} rev {c.revision}",
            "width": round(BAR_PX * (c.time_to_enforce_s or 0) / longest, 1),
            "text": "not acknowledged" if c.time_to_enforce_s is None else f"{c.time_to_enforce_s:.2f} s",
            "late": c.acked_at is None or (c.deadline is not None and c.acked_at > c.deadline),
        }
        for c in clusters
    ]
