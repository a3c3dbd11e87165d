"""The report names who caused the commands sent to each cluster, and flags a command whose cause is not the one
its directive revision records."""

from __future__ import annotations

from services.audit.html import render_html
from services.audit.report import build_report
from shared.contracts.directives import CausedBy
from tests.unit.audit.evidence_story import DIGEST, story
from tests.unit.audit.test_evidence import NOW, evidence_of


def report_of(**kwargs):
    return build_report(evidence_of(story("EXP-9", **kwargs)), "EXP-9", NOW, reproduced={1: DIGEST})


def test_commands_are_grouped_by_the_cause_they_name() -> None:
    report = report_of(emergency=False)
    assert [(g.revision, g.action, g.clusters, g.caused_by) for g in report.commands] == [
        (1, "restrict", ["ap-south", "eu-west", "us-east"], "proposed by alice, approved by bob")
    ]
    assert not [d for d in report.discrepancies if d.kind == "cause_mismatch"]
    assert "proposed by alice, approved by bob" in render_html(report)


def test_an_emergency_cause_names_the_issuer_and_reason() -> None:
    (group,) = report_of(emergency=True).commands
    assert group.caused_by == "proposed by alice (emergency, acting alone: court order)"


def test_a_command_naming_another_approver_is_a_cause_mismatch() -> None:
    other = CausedBy(proposed_by="alice", approved_by=["mallory"])
    report = report_of(emergency=False, command_cause=other)
    found = [d for d in report.discrepancies if d.kind == "cause_mismatch"]
    assert sorted(d.cluster for d in found) == ["ap-south", "eu-west", "us-east"]
    assert "names proposed by alice, approved by mallory" in found[0].detail
    assert "was issued proposed by alice, approved by bob" in found[0].detail


def test_a_command_naming_no_cause_for_a_revision_that_records_one_is_a_cause_mismatch() -> None:
    report = report_of(emergency=False, command_cause=None)
    assert report.commands[0].caused_by is None
    found = [d for d in report.discrepancies if d.kind == "cause_mismatch"]
    assert len(found) == 3 and "names no cause" in found[0].detail
