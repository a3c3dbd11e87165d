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


@pytest.mark.parametrize(
    "name, text",
    [
        (
            "d.yaml",
            "directive_id: EXP-1\ntitle: caf\u00e9\nscope:\n  models: [fable-5]\n"
            "  selector: {kind: foreign_national, home_country: US}\n",
        ),
        (
            "d.json",
            '{"directive_id": "EXP-1", "title": "caf\u00e9",\n "scope": {"models": ["fable-5"],\n'
            ' "selector": {"kind": "foreign_national", "home_country": "US"}}}\n',
        ),
    ],
)
def test_a_file_with_a_bom_and_crlf_line_endings_reads_like_a_plain_one(tmp_path: Path, name: str, text: str) -> None:
    plain, windows = tmp_path / f"plain-{name}", tmp_path / f"windows-{name}"
    plain.write_bytes(text.encode())
    windows.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert load_directive_file(windows) == load_directive_file(plain)
    assert validate_directive(load_directive_file(windows)).title == "caf\u00e9"


@pytest.mark.parametrize(
    "content, says",
    [
        ("{}".encode("utf-16"), "UTF-16"),
        ("title: caf\u00e9\n".encode("latin-1"), "not valid UTF-8"),
        (b"title: [" + b"[" * 10_000 + b"]" * 10_001 + b"\n", "MAX_JSON_DEPTH"),
        (b'{"title": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "MAX_JSON_DEPTH"),
        (b'{"enforcement_deadline_s": ' + b"9" * 10_000 + b"}", "MAX_NUMBER_CHARS"),
        (b"title: " + b"x" * (1024 * 1024) + b"\n", "MAX_BODY_BYTES"),
    ],
)
def test_a_file_that_cannot_be_read_is_a_problem_saying_why(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / ("d.json" if content.startswith(b"{") else "d.yaml")
    path.write_bytes(content)
    with pytest.raises(FileProblem, match=says):
        load_directive_file(path)
