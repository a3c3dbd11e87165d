"""Report, explain and point-in-time answers from the evidence of a directive told on every topic; the clause
explanation agrees with the reference evaluation; the HTML report is one self-contained file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from devtools.registry.oracle import evaluate
from services.audit.clauses import explain_selector
from services.audit.evidence import Evidence
from services.audit.explain import at_moment, explain
from services.audit.html import render_html
from services.audit.report import DISCREPANCY_LIMIT, NothingFound, _uncovered_notices, build_report
from services.audit.report_model import Assessment, Notices, report_schema
from shared.contracts.directives import AllOf, AnyOf, DirectiveScope, ForeignNational, Not, Residence
from tests.unit.audit.evidence_story import DIGEST, at, story

NOW = datetime(2026, 3, 4, tzinfo=UTC)


def evidence_of(records, focus_user: int | None = None, reverse: bool = False) -> Evidence:
    evidence = Evidence(focus_user=focus_user)
    positioned = [(topic, 0, n, key, value) for n, (topic, key, value) in enumerate(records)]
    for topic, partition, offset, key, value in reversed(positioned) if reverse else positioned:
        evidence.add(topic, partition, offset, key, value, 0)
    return evidence


@pytest.fixture(scope="module")
def report():
    return build_report(evidence_of(story("EXP-9")), "EXP-9", NOW, reproduced={1: DIGEST})


def test_every_discrepancy_is_listed_one_by_one(report) -> None:
    kinds = sorted((d.kind, d.cluster, d.user) for d in report.discrepancies)
    assert kinds == [
        ("emergency_issue", None, None),
        ("enforced_after_deadline", "eu-west", None),
        ("missing_ack", "ap-south", None),
        ("missing_notice", None, 9),
    ]
    assert report.discrepancies_total == 4


def test_the_report_names_approvals_time_to_enforce_and_affected_users(report) -> None:
    assert (report.revisions[0].proposed_by, report.revisions[0].approved_by) == ("alice", None)
    assert {c.cluster: c.time_to_enforce_s for c in report.clusters} == {
        "ap-south": 6.0,
        "eu-west": 90.0,
        "us-east": 5.0,
    }
    assert report.assessments[0].by_country == {"FR": 1, "US": 2} and report.assessments[0].reproduced_digest == DIGEST
    assert (report.notices[0].requested, report.notices[0].delivered) == (3, 2)


def test_a_digest_that_does_not_reproduce_is_a_discrepancy() -> None:
    found = build_report(evidence_of(story("EXP-9", emergency=False)), "EXP-9", NOW, reproduced={1: "0" * 64})
    assert "reproduction_mismatch" in {d.kind for d in found.discrepancies}
    assert "emergency_issue" not in {d.kind for d in found.discrepancies}


def test_the_report_is_the_same_whatever_order_partitions_interleave_in(report) -> None:
    again = build_report(evidence_of(story("EXP-9"), reverse=True), "EXP-9", NOW, reproduced={1: DIGEST})
    assert again.model_dump(exclude={"timeline"}) == report.model_dump(exclude={"timeline"})


def test_undelivered_notices_past_the_listing_limit_are_counted_not_listed() -> None:
    evidence = evidence_of(story("EXP-9"))
    tally = evidence.notices[("EXP-9", 1, "restricted")]
    tally.requested.update(range(1_000, 1_000 + DISCREPANCY_LIMIT + 5_000))  # never delivered
    tally.failed[1_000] = "mailbox full"
    found = build_report(evidence, "EXP-9", NOW, reproduced={1: DIGEST})
    assert found.discrepancies_total == 4 + DISCREPANCY_LIMIT + 5_000  # the story's four, then every notice
    assert len(found.discrepancies) == DISCREPANCY_LIMIT
    assert [d.kind for d in found.discrepancies[:5]] == [
        "emergency_issue",
        "missing_ack",
        "enforced_after_deadline",
        "missing_notice",  # user 9's
        "failed_notice",
    ]
    assert found.discrepancies[4].user == 1_000 and found.discrepancies[-1].user == 1_000 + DISCREPANCY_LIMIT - 5


def test_an_unknown_directive_or_an_empty_window_is_refused() -> None:
    evidence = evidence_of(story("EXP-9"))
    with pytest.raises(NothingFound, match="EXP-NOPE"):
        build_report(evidence, "EXP-NOPE", NOW)
    with pytest.raises(NothingFound, match="no event"):
        build_report(evidence, "EXP-9", NOW, (datetime(2030, 1, 1, tzinfo=UTC), None))


def test_the_report_validates_against_its_published_schema(report) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(report.model_dump_json()), report_schema())


def test_the_published_schema_is_current() -> None:
    path = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "audit-report.json"
    assert json.loads(path.read_text()) == report_schema(), "run: python -m services.audit.report_model > that file"


def test_explain_denies_a_covered_user_where_the_cluster_acked_the_right_digest() -> None:
    answer = explain(evidence_of(story("EXP-9"), focus_user=7), 7, "fable-5", at(30))
    assert answer["clusters"]["us-east"]["decision"] == "denied"
    assert answer["clusters"]["eu-west"]["decision"].startswith("allowed, but should have been denied")
    assert answer["clusters"]["ap-south"]["decision"].startswith("allowed, but should")  # wrong digest
    [directive] = answer["directives"]
    assert directive["selector"]["truth"] is True and "FR" in directive["selector"]["why"]
    assert answer["registry_record"]["record"]["user_id"] == 7 and directive["notice"]["delivered"] is True


def test_explain_allows_an_uncovered_user_and_shows_the_clause_that_did_not_match() -> None:
    answer = explain(evidence_of(story("EXP-9"), focus_user=10), 10, "fable-5", at(100))
    assert {v["decision"] for v in answer["clusters"].values()} == {"allowed"}
    assert answer["directives"][0]["covered"] is False and answer["directives"][0]["selector"]["truth"] is False


def test_explain_refuses_an_unknown_user_and_a_time_before_any_event() -> None:
    with pytest.raises(NothingFound, match="user: 4242"):
        explain(evidence_of(story("EXP-9"), focus_user=4242), 4242, "fable-5", at(30))
    with pytest.raises(NothingFound, match="before any recorded event"):
        explain(evidence_of(story("EXP-9"), focus_user=7), 7, "fable-5", at(-3600))


def test_at_lists_the_directives_in_force_with_cluster_states_and_counts() -> None:
    evidence = evidence_of(story("EXP-9"))
    assert at_moment(evidence, at(-10))["directives_in_force"] == 0
    answer = at_moment(evidence, at(100))
    [directive] = answer["directives"]
    assert directive["affected_by_model"] == {"fable-5": 3} and directive["clusters"]["ap-south"] == "failed"


@pytest.mark.parametrize(
    "selector",
    [
        ForeignNational(home_country="US"),
        Not(of=Residence(any_of=["US"])),
        AllOf(of=[ForeignNational(home_country="US"), Residence(any_of=["US"])]),
        AnyOf(of=[Not(of=ForeignNational(home_country="US")), Residence(any_of=["FR"])]),
    ],
)
def test_the_clause_explanation_agrees_with_the_reference_evaluation(selector) -> None:
    users = [
        {"user_id": 1, "nationalities": ["FR"], "residence": "US", "account_type": "consumer"},
        {"user_id": 2, "nationalities": None, "residence": None, "account_type": "employee"},
        {"user_id": 3, "nationalities": [], "residence": "FR", "account_type": "consumer"},
        {"user_id": 4, "nationalities": ["US", "FR"], "residence": "US", "account_type": "consumer"},
    ]
    document = DirectiveScope(models=["m"], selector=selector).model_dump(mode="json")["selector"]
    for user in users:
        assert explain_selector(document, user)["truth"] == evaluate(selector, user)


def test_the_html_report_is_self_contained_and_shows_the_numbers(report) -> None:
    page = render_html(report)
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert 'data-testid="affected-users">3<' in page and 'data-testid="discrepancies" class="bad">4<' in page
    assert "90.00 s" in page and "alice" in page


def _assessment(losing: dict[str, int] | None, action: str = "restrict") -> Assessment:
    return Assessment(
        revision=1,
        action=action,
        assessed_at=NOW,
        affected_users=10,
        affected_by_model={"fable-5": 10, "mythos-5": 10},
        losing_by_model=losing,
        by_country={},
        by_account_type={},
        digest=DIGEST,
        registry_offsets={},
    )


def _requested(count: int, action: str = "restricted") -> Notices:
    return Notices(revision=1, action=action, requested=count, delivered=count, failed=0, first_at=NOW, last_at=NOW)


@pytest.mark.parametrize(
    ("losing", "requested", "missing"),
    [
        ({"fable-5": 6, "mythos-5": 4}, 6, None),  # users covered but entitled to neither model are not told
        ({"fable-5": 6, "mythos-5": 4}, 5, "5 notices requested, fewer than the 6 users losing fable-5"),
        (None, 9, "9 notices requested, fewer than the 10 affected users"),  # an assessment without the counts
    ],
)
def test_notices_are_owed_to_the_users_who_lose_a_model_not_to_every_covered_user(losing, requested, missing) -> None:
    evidence = SimpleNamespace(enforced={("EXP-9", 1, "restrict")})
    found = list(_uncovered_notices([_assessment(losing)], [_requested(requested)], evidence, "EXP-9"))
    assert [d.detail for d in found] == ([] if missing is None else [f"restrict: {missing}"])


def test_a_lift_names_who_proposed_and_who_approved_it() -> None:
    lifted = {
        "type": "DirectiveLifted",
        "event_id": "lift-1",
        "occurred_at": at(40).isoformat(),
        "directive_id": "EXP-9",
        "revision": 1,
        "reason": "Order revoked",
        "correlation_id": "EXP-9",
        "proposed_by": "alice",
        "approved_by": ["bob", "carol"],
        "emergency": False,
    }
    records = [*story("EXP-9"), ("compliance.directives.v1", b"EXP-9", json.dumps(lifted).encode())]
    report = build_report(evidence_of(records), "EXP-9", NOW, reproduced={1: DIGEST})
    (lift,) = report.lifts
    assert (lift.proposed_by, lift.approved_by, lift.emergency, lift.reason) == (
        "alice",
        "bob, carol",
        False,
        "Order revoked",
    )
