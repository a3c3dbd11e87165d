"""`countermand directive preview FILE`: a malformed file names the field and exits non-zero before any call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.impact.cli import _show, app

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: a test that reached the network would fail differently


def directive(**scope: object) -> dict:
    return {
        "directive_id": "EXP-1",
        "title": "Export control",
        "scope": {"models": ["fable-5"], "selector": {"kind": "everyone"}, **scope},
    }


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (directive(selector={"kind": "nationality", "any_of": ["XX"]}), "scope.selector.any_of[0]"),
        (directive(selector={"kind": "religion"}), "scope.selector"),
        (directive(models=[]), "scope.models"),
        ({"title": "no id", "scope": directive()["scope"]}, "directive_id"),
    ],
    ids=["unknown country", "unknown selector kind", "no model", "missing id"],
)
def test_a_malformed_directive_file_names_the_field_and_exits_non_zero(
    tmp_path: Path, content: dict, field: str
) -> None:
    file = tmp_path / "directive.json"
    file.write_text(json.dumps(content))
    result = CliRunner().invoke(app, ["preview", str(file), "--impact-url", UNREACHABLE])
    assert result.exit_code == 2
    assert field in result.output and "nothing was previewed" in result.output


def test_a_file_that_is_not_yaml_exits_non_zero_naming_the_problem(tmp_path: Path) -> None:
    file = tmp_path / "directive.yaml"
    file.write_text("directive_id: [unclosed\n")
    result = CliRunner().invoke(app, ["preview", str(file), "--impact-url", UNREACHABLE])
    assert result.exit_code == 1 and "not valid YAML" in result.output


def test_yaml_country_code_no_stays_norway(tmp_path: Path) -> None:
    file = tmp_path / "directive.yaml"
    file.write_text(
        "directive_id: EXP-1\ntitle: t\nscope:\n  models: [fable-5]\n  selector: {kind: nationality, any_of: [NO]}\n"
    )
    result = CliRunner().invoke(app, ["preview", str(file), "--impact-url", UNREACHABLE])
    assert result.exit_code == 1 and "cannot reach impact" in result.output  # valid: it got as far as calling


def test_the_preview_shows_who_loses_each_model_beside_who_is_covered(capsys: pytest.CaptureFixture[str]) -> None:
    body = {
        "directive_id": "EXP-1",
        "affected_by_model": {"fable-5": 1200, "mythos-5": 1200},
        "losing_by_model": {"fable-5": 700, "mythos-5": 45},
        "affected_users": 1200,
        "losing_users": 712,
        "unknown_only": 3,
        "by_country": {"DE": 1200},
        "by_account_type": {"consumer": 1200},
        "sample": [7, 9],
    }
    _show(body, "would be denied")
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split("│")[1].strip(): line for line in lines if line.count("│") >= 3}
    assert any("users covered" in line and "users losing it" in line for line in lines)
    assert "1,200" in rows["fable-5"] and "700" in rows["fable-5"] and "45" in rows["mythos-5"]
    assert "712" in rows["distinct users"]


def test_a_preview_from_an_impact_without_losing_counts_shows_coverage_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {
        "directive_id": "EXP-1",
        "affected_by_model": {"fable-5": 1200},
        "affected_users": 1200,
        "unknown_only": 0,
        "by_country": {},
        "by_account_type": {},
        "sample": [],
    }
    _show(body, "would be denied")
    output = capsys.readouterr().out
    assert "users covered" in output and "losing" not in output
