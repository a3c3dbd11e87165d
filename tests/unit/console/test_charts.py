"""Bar charts for the dry run: largest first, the tail summed as "other", bars in proportion."""

from __future__ import annotations

from services.console.actions import parse_directive
from services.console.charts import TOP, WIDTH, bar_chart


def test_bars_are_largest_first_in_proportion_with_the_tail_summed_as_other() -> None:
    values = {f"C{n:02d}": n for n in range(1, TOP + 4)}  # 15 countries, 1..15 users
    chart = bar_chart(values, "by country")
    labels = [b["label"] for b in chart["bars"]]
    assert labels[:3] == ["C15", "C14", "C13"] and labels[-1] == "other"
    assert chart["bars"][-1]["value"] == 1 + 2 + 3 and chart["total"] == sum(values.values())
    assert chart["bars"][0]["width"] == WIDTH and chart["bars"][1]["width"] == round(WIDTH * 14 / 15)


def test_an_empty_breakdown_draws_no_bar() -> None:
    assert bar_chart({}, "none")["bars"] == [] and bar_chart({"US": 0}, "zero")["bars"][0]["width"] == 0


def test_a_draft_may_be_json_or_yaml_and_anything_else_is_named() -> None:
    assert parse_directive('{"directive_id": "X-1", "title": "t", "scope": {}}')[0]["directive_id"] == "X-1"
    assert parse_directive("- a list")[1][0]["message"].startswith("a directive is a mapping")
    assert parse_directive("   ")[1][0]["field"] == "(directive)"
