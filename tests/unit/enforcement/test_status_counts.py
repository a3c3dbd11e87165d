"""`countermand status` shows, per model, the users a revision covers beside the users losing access."""

from __future__ import annotations

from pyroaring import BitMap
from rich.console import Console

from services.enforcement.cli import fold, models_table, overview_table
from tests.unit.enforcement.scenario import assessment


def _text(table) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def _row(text: str, first: str) -> list[str]:
    [line] = [line for line in text.splitlines() if line.split("│")[1:2] and line.split("│")[1].strip() == first]
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_status_shows_losing_beside_covered_per_model() -> None:
    head, *_ = assessment({"fable-5": BitMap(range(1200)), "mythos-5": BitMap(range(30))}, directive="D-1")
    head = head.model_copy(update={"losing_by_model": {"fable-5": 1000, "mythos-5": 0}})
    [status] = fold([], [head]).values()
    text = _text(models_table(status))
    assert _row(text, "fable-5") == ["fable-5", "1,200", "1,000"]
    assert _row(text, "mythos-5") == ["mythos-5", "30", "0"]
    assert "fable-5 1,200/1,000, mythos-5 30/0" in _text(overview_table(fold([], [head])))


def test_status_says_n_a_for_an_assessment_without_losing_counts() -> None:
    head, *_ = assessment({"fable-5": BitMap(range(5))}, directive="D-2")
    [status] = fold([], [head]).values()
    assert _row(_text(models_table(status)), "fable-5") == ["fable-5", "5", "n/a"]


def test_a_lift_is_shown_as_users_regaining_access() -> None:
    head, *_ = assessment({"fable-5": BitMap(range(5))}, directive="D-3", action="lift")
    head = head.model_copy(update={"losing_by_model": {"fable-5": 4}})
    text = _text(models_table(fold([], [head])[("D-3", 1, "lift")]))
    assert "users regaining access" in text and _row(text, "fable-5") == ["fable-5", "5", "4"]
