"""Fuzzed directive files, read as the CLI reads them: a request, or an error naming the problem (FileProblem, or
typer.Exit after printing the fields) -- never another exception, never a hang."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
import typer
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from rich.console import Console

from shared.contracts.directives import DirectiveRequest
from shared.runtime.directive_files import FileProblem, load_directive_file, validate_directive
from tests.fuzz.strategies import VALID, directive_bodies

FOLDER = Path(tempfile.mkdtemp(prefix="countermand-fuzz-files-"))
SUFFIXES = st.sampled_from([".yaml", ".yml", ".json", ".txt", ""])


def read(content: bytes, suffix: str) -> None:
    """The CLI's reading of a file: a DirectiveRequest, or a named refusal."""
    path = FOLDER / f"directive{suffix}"
    path.write_bytes(content)
    err = Console(file=io.StringIO(), soft_wrap=True)
    try:
        data = load_directive_file(path)
    except FileProblem as exc:
        assert str(exc)
        return
    try:
        assert isinstance(validate_directive(data, err=err), DirectiveRequest)
    except typer.Exit as exc:
        assert exc.exit_code in (1, 2) and "error:" in err.file.getvalue()


@given(st.binary(max_size=4096), SUFFIXES)
@example(b"\xef\xbb\xbf{}", ".json")
@example(b"[" * 5000, ".json")
@example(b"[" * 5000, ".yaml")  # was 15 s in PyYAML's scanner (quadratic in open flow collections)
@example(b"a: &a [*a]", ".yaml")
@example(b"!!python/object:os.system {}", ".yaml")
@example(b"1" * 5000, ".yaml")
def test_any_bytes_are_a_request_or_a_named_problem(content: bytes, suffix: str) -> None:
    read(content, suffix)


@given(directive_bodies, SUFFIXES)
def test_any_directive_shaped_yaml_is_a_request_or_a_named_problem(body, suffix: str) -> None:
    read(yaml.safe_dump(body, allow_unicode=True).encode(), suffix if suffix != ".json" else ".yaml")


@given(directive_bodies, SUFFIXES)
@example({**VALID, "scope": {**VALID["scope"], "selector": {"kind": [], "any_of": ["x"]}}}, ".json")  # TypeError
def test_any_directive_shaped_json_is_a_request_or_a_named_problem(body, suffix: str) -> None:
    read(json.dumps(body).encode(), suffix)


@given(st.integers(0, len(json.dumps(VALID))), st.binary(max_size=8))
def test_a_truncated_or_spliced_file_is_a_request_or_a_named_problem(cut: int, splice: bytes) -> None:
    text = yaml.safe_dump(VALID).encode()
    read(text[:cut] + splice + text[cut:], ".yaml")
    read(json.dumps(VALID).encode()[:cut] + splice, ".json")


def test_a_file_of_open_brackets_is_refused_as_too_deep_before_yaml_scans_it() -> None:
    path = FOLDER / "brackets.yaml"
    path.write_bytes(b"scope: " + b"[" * 1_000_000)  # PyYAML alone: hours (quadratic scanner)
    with pytest.raises(FileProblem, match="nested too deep"):
        load_directive_file(path)
