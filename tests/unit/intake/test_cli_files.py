"""Directive files: YAML or JSON, parse errors located, the mission example valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.scenarios import MISSION_FILE
from shared.runtime.directive_files import FileProblem, load_directive_file, validate_directive

MISSION = MISSION_FILE


def test_the_mission_directive_file_is_valid() -> None:
    request = validate_directive(load_directive_file(MISSION))
    assert request.directive_id == "EXP-2026-001"
    assert request.scope.models == ["fable-5", "mythos-5"]
    assert request.scope.selector.model_dump() == {"kind": "foreign_national", "home_country": "US"}
    assert (request.scope.unknown_attribute, request.scope.enforcement_deadline_s) == ("restrict", 120)


def test_json_content_is_recognised_without_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "directive.txt"
    path.write_text('{"directive_id": "EXP-1"}')
    assert load_directive_file(path) == {"directive_id": "EXP-1"}


def test_norway_stays_a_country_code_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("selector: {kind: nationality, any_of: [NO, ON]}\n")
    assert load_directive_file(path) == {"selector": {"kind": "nationality", "any_of": ["NO", "ON"]}}


def test_malformed_json_is_located(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"directive_id": "EXP-1",\n "title": }')
    with pytest.raises(FileProblem, match="not valid JSON.*line 2 column"):
        load_directive_file(path)


def test_malformed_yaml_is_located(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("directive_id: EXP-1\nscope: [a, b\ntitle: x\n")
    with pytest.raises(FileProblem, match="not valid YAML.*line 3 column"):
        load_directive_file(path)
