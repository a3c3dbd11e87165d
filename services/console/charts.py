"""Horizontal bar charts as geometry for inline SVG (no script, no asset fetched): largest first, top 12."""

from __future__ import annotations

from typing import Any

TOP = 12
WIDTH = 320  # px of the longest bar
ROW = 22


def bar_chart(values: dict[str, int], title: str) -> dict[str, Any]:
    """The bars of `values` (label -> count), largest first; the rest summed as "other"."""
    ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ordered[:TOP]
    rest = sum(v for _, v in ordered[TOP:])
    if rest:
        shown.append(("other", rest))
    peak = max((v for _, v in shown), default=0) or 1
    bars = [
        {"label": label, "value": value, "y": i * ROW, "width": max(1, round(WIDTH * value / peak)) if value else 0}
        for i, (label, value) in enumerate(shown)
    ]
    return {"title": title, "bars": bars, "height": max(ROW, len(bars) * ROW), "total": sum(values.values())}
