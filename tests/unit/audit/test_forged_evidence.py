"""Forged records (unsigned, altered, unknown or retired key) on a signed topic are set aside: listed in the report,
its HTML, the timelines and explain's answer, and never used as evidence. A drift healed is a discrepancy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from services.audit.chain import link
from services.audit.cli import app as cli_app
from services.audit.evidence import Evidence
from services.audit.explain import explain
from services.audit.forgery import Signatures
from services.audit.html import render_html
from services.audit.ledger import Ledger
from services.audit.record import Record
from services.audit.report import build_report
from services.audit.timeline import timeline
from shared.contracts.enforcement import ClusterProgress, EnforcementProgressed
from shared.runtime.signing import KeySet, Signer
from tests.unit.audit.evidence_story import DIGEST, at, story

NOW = datetime(2026, 3, 4, tzinfo=UTC)
SIGNED = ("compliance.directives.v1", "compliance.impact.v1", "serving.commands.v1")
INTAKE, IMPACT, ENFORCEMENT = Signer.generate("intake-1"), Signer.generate("impact-1"), Signer.generate("enf-1")
SIGNER_OF = dict(zip(SIGNED, (INTAKE, IMPACT, ENFORCEMENT), strict=True))
TS = int(at(0).timestamp() * 1000)


def keys(retire_intake_at: datetime | None = None) -> Signatures:
    return Signatures(
        {
            "compliance.directives.v1": KeySet([INTAKE.public(retire_intake_at)]),
            "compliance.impact.v1": KeySet([IMPACT.public()]),
            "serving.commands.v1": KeySet([ENFORCEMENT.public()]),
        }
    )


def signed(topic: str, key: bytes, value: bytes, signer: Signer | None = None) -> tuple:
    signer = signer or SIGNER_OF.get(topic)
    headers = [] if signer is None else [(k, v.encode()) for k, v in signer.headers(topic, key, value).items()]
    return (topic, key, value, headers)


def honest(directive_id: str = "EXP-9") -> list[tuple]:
    return [signed(topic, key, value) for topic, key, value in story(directive_id)]


def lift(directive_id: str = "EXP-9") -> bytes:
    return orjson.dumps(
        {
            "type": "DirectiveLifted",
            "event_id": "forged-lift",
            "occurred_at": at(20).isoformat(),
            "directive_id": directive_id,
            "revision": 1,
            "reason": "forged",
            "correlation_id": directive_id,
        }
    )


def fold(records: list[tuple], signatures: Signatures, focus_user: int | None = None) -> Evidence:
    evidence = Evidence(focus_user=focus_user, signatures=signatures)
    for offset, (topic, key, value, headers) in enumerate(records):
        evidence.add(topic, 0, offset, key, value, TS, headers)
    return evidence


def forged_records() -> list[tuple]:
    """An unsigned lift, an altered assessment, a command signed by a key nobody trusts."""
    story_records = honest()
    assessed = next(r for r in story_records if b'"ImpactAssessed"' in r[2])
    altered = assessed[2].replace(b'"affected_users":3', b'"affected_users":4', 1)
    assert altered != assessed[2]
    command = next(r for r in story_records if b'"RestrictCommand"' in r[2])
    stranger = Signer.generate("enf-1")  # the trusted key id, another key
    return [
        ("compliance.directives.v1", b"EXP-9", lift(), []),
        ("compliance.impact.v1", b"EXP-9", altered, assessed[3]),
        signed("serving.commands.v1", command[1], command[2].replace(b"us-east", b"ap-south"), stranger),
    ]


def test_every_signed_story_record_passes_and_nothing_is_flagged() -> None:
    evidence = fold(honest(), keys())
    assert evidence.forgeries == []
    report = build_report(evidence, "EXP-9", NOW)
    assert report.forgeries == [] and report.signed_topics == sorted(SIGNED)
    assert "forged_record" not in {d.kind for d in report.discrepancies}


def test_unsigned_altered_and_foreign_key_records_are_flagged_with_their_reason() -> None:
    evidence = fold(honest() + forged_records(), keys())
    reasons = sorted(f.reason for f in evidence.forgeries)
    assert reasons == ["bad signature (key id 'enf-1')", "bad signature (key id 'impact-1')", "unsigned"]
    report = build_report(evidence, "EXP-9", NOW)
    assert [f.event for f in report.forgeries] == ["DirectiveLifted", "ImpactAssessed", "RestrictCommand"]
    assert sum(d.kind == "forged_record" for d in report.discrepancies) == 3
    forged_lines = [line for line in report.timeline if line.forged]
    assert len(forged_lines) == 3 and all(line.summary.startswith("FORGED (") for line in forged_lines)


def test_forged_records_are_never_evidence() -> None:
    """The forged lift does not lift, the altered assessment does not count 4 users."""
    evidence = fold(honest() + forged_records(), keys(), focus_user=7)
    report = build_report(evidence, "EXP-9", NOW)
    assert report.lifts == [] and report.assessments[0].affected_users == 3
    answer = explain(evidence, 7, "fable-5", at(30))
    assert answer["clusters"]["us-east"]["decision"] == "denied"  # the forged lift at 20 s changed nothing
    assert {f["reason"] for f in answer["forged_records_ignored"]} >= {"unsigned"}
    unchecked = fold(honest() + forged_records(), Signatures({}), focus_user=7)
    assert explain(unchecked, 7, "fable-5", at(30))["directives"] == []  # without checks the lift would count


def test_a_record_signed_after_its_key_retired_is_a_forgery_and_before_is_not() -> None:
    assert fold(honest(), keys(retire_intake_at=at(3600))).forgeries == []
    retired = fold(honest(), keys(retire_intake_at=at(-1)))
    assert {f.reason for f in retired.forgeries} == {"retired signing key (key id 'intake-1')"}


def test_the_html_report_shows_the_forgeries() -> None:
    page = render_html(build_report(fold(honest() + forged_records(), keys()), "EXP-9", NOW))
    assert 'data-testid="forgeries" class="bad">3<' in page
    assert page.count('data-testid="forged-line"') == 3 and "unsigned" in page
    clean = render_html(build_report(fold(honest(), keys()), "EXP-9", NOW))
    assert 'data-testid="forgeries" class="ok">0<' in clean and "signed by a current key" in clean


def test_the_ledger_timeline_marks_forged_entries() -> None:
    records = [
        Record(topic, 0, n, key, value, tuple(headers), TS)
        for n, (topic, key, value, headers) in enumerate(honest() + forged_records())
    ]
    lines = timeline(link(records, "0" * 64, 1), "EXP-9", keys())
    forged = [line for line in lines if line.event.startswith("FORGED")]
    assert sorted(line.event for line in forged) == [
        "FORGED DirectiveLifted",
        "FORGED ImpactAssessed",
        "FORGED RestrictCommand",
    ]
    assert not any(
        line.event.startswith("FORGED") for line in timeline(link(records[:-3], "0" * 64, 1), "EXP-9", keys())
    )


def progress(states: dict[str, tuple[str, str | None]], seconds: float) -> tuple:
    update = EnforcementProgressed(
        producer="enforcement",
        directive_id="EXP-9",
        revision=1,
        action="restrict",
        expected_digest=DIGEST,
        clusters={
            c: ClusterProgress(
                state=s, digest=d, expected_digest=DIGEST, reason="drift: holds 9 users" if s == "drifted" else None
            )
            for c, (s, d) in states.items()
        },
        deadline=at(60),
        occurred_at=at(seconds),
    )
    return ("compliance.enforcement.v1", b"EXP-9", update.model_dump_json().encode(), [])


@pytest.mark.parametrize(
    ("after", "healed"),
    [(("applied", DIGEST), True), (("applied", "f" * 64), False), (("drifted", "e" * 64), False)],
)
def test_a_drift_found_then_healed_with_the_right_digest_is_listed(after, healed) -> None:
    extra = [
        progress({"us-east": ("drifted", "e" * 64)}, 200),
        progress({"us-east": after}, 204),
    ]
    report = build_report(fold(honest() + extra, Signatures({})), "EXP-9", NOW)
    found = [d for d in report.discrepancies if d.kind == "drift_healed"]
    assert len(found) == (1 if healed else 0)
    if healed:
        assert found[0].cluster == "us-east" and found[0].at == at(204) and "4.0s later" in found[0].detail
        assert "drift: holds 9 users" in found[0].detail
    assert json.loads(report.model_dump_json())  # the new kinds fit the schema's enum


def forged_ledger(tmp_path: Path) -> tuple[Path, list[str]]:
    """A ledger of the signed story and the three forgeries; the --record-keys options that check it."""
    path = tmp_path / "audit" / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.append(
        [
            Record(topic, 0, n, key, value, tuple(headers), TS)
            for n, (topic, key, value, headers) in enumerate(honest() + forged_records())
        ]
    )
    ledger.close()
    options = []
    for topic, keys_of_topic in keys().keys.items():
        file = tmp_path / f"{topic}.jwks.json"
        file.write_text(keys_of_topic.to_json())
        options += ["--record-keys", f"{topic}={file}"]
    return path, options


def test_verify_lists_every_forged_entry_with_its_reason(tmp_path: Path) -> None:
    path, options = forged_ledger(tmp_path)
    result = CliRunner().invoke(cli_app, ["verify", "--no-kafka", "--ledger", str(path), *options])
    assert result.exit_code == 0, result.output  # the ledger is intact: it recorded the forgeries faithfully
    assert "3 forged records" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  seq ")]
    assert sorted(line.split(": ", 1)[1] for line in lines) == [
        "bad signature (key id 'enf-1')",
        "bad signature (key id 'impact-1')",
        "unsigned",
    ]
    clean = CliRunner().invoke(cli_app, ["verify", "--no-kafka", "--ledger", str(path)])
    assert "record signatures not checked" in clean.output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("no-equals-sign", "is not TOPIC=FILE"),
        ("no.such.topic=/tmp/x.json", "is not TOPIC=FILE with a known topic"),
        ("compliance.directives.v1=/nonexistent/keys.json", "cannot read /nonexistent/keys.json"),
    ],
)
def test_a_bad_record_keys_option_is_refused_clearly(tmp_path: Path, option: str, message: str) -> None:
    path, _ = forged_ledger(tmp_path)
    result = CliRunner().invoke(cli_app, ["verify", "--no-kafka", "--ledger", str(path), "--record-keys", option])
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_the_timeline_command_marks_forged_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, options = forged_ledger(tmp_path)
    files = dict(option.split("=", 1) for option in options[1::2])
    monkeypatch.setenv("COUNTERMAND_AUDIT_RECORD_KEYS", json.dumps(files))
    result = CliRunner().invoke(cli_app, ["timeline", "EXP-9", "--ledger", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert result.output.count("FORGED") == 3
