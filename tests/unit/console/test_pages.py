"""The console's pages and actions over HTTP: sessions, the board's pages, approvals through the real intake API
(four eyes decided by intake), drafts through impact's preview, lookups through the audit's explain."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from services.audit.api import create_api as create_audit_api
from services.audit.forgery import NO_CHECK
from services.audit.ledger import Ledger
from services.audit.report_model import DirectiveReport
from services.console.feed import Hub
from shared.runtime.auth import AuthSettings, Guard, LocalIssuer, Role
from tests.unit.audit.evidence_story import ledger_records
from tests.unit.console.fakes import (
    SCOPE,
    TOPICS,
    Console,
    applied,
    checkpoint,
    enforced,
    heartbeat,
    issued,
    progressed,
)

P, A, V, AU = Role.PROPOSER, Role.APPROVER, Role.VIEWER, Role.AUDITOR
MISSION_YAML = """
directive_id: EXP-9
title: Export control
authority: Order 2026/17
scope:
  models: [fable-5, mythos-5]
  selector: {kind: foreign_national, home_country: US}
"""


def chart_counts(html: str, chart: str) -> dict[str, str]:
    """The data table of one chart on a page: label -> count."""
    table = re.search(rf'<table[^>]*data-chart="{chart}".*?</table>', html, re.S)
    assert table, f"no chart {chart!r} on the page"
    return dict(re.findall(r'data-count="([^"]+)">([^<]*)<', table.group(0)))


def model_row(html: str, model: str) -> dict[str, str]:
    """The cells of one model's row of the dry run's per-model table: field -> text."""
    row = re.search(rf'<tr data-model="{model}">.*?</tr>', html, re.S)
    assert row, f"no row for {model!r}"
    return dict(re.findall(r'<td data-field="([^"]+)">([^<]*)<', row.group(0)))


@pytest.fixture
def console(tmp_path: Path) -> Console:
    return Console(tmp_path)


@pytest.fixture
def on_the_audit(tmp_path: Path) -> Console:
    """A console whose audit is the audit's real API over a ledger of two directives' stories (EXP-9, EXP-10),
    trusting the console's token issuer."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.append(ledger_records())
    ledger.close()
    issuer = LocalIssuer()
    guard = Guard(AuthSettings(mode="on", jwks_file=issuer.write(tmp_path), issuer=issuer.issuer), "audit")
    audit = create_audit_api("audit", lambda: Ledger(tmp_path / "ledger.sqlite", read_only=True), NO_CHECK, guard, bool)
    return Console(tmp_path, audit=audit, issuer=issuer)


async def test_login_keeps_the_token_in_an_httponly_cookie_and_shows_who_is_signed_in(console: Console) -> None:
    browser = console.browser()
    reply = await browser.post("/login", data={"token": console.issuer.mint("carol", [V]), "next": "/clusters"})
    assert reply.status_code == 303 and reply.headers["location"] == "/clusters"
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = await browser.get("/directives")
    assert page.status_code == 200 and "carol (viewer)" in page.text


async def test_a_bad_token_is_refused_at_login_with_the_reason_and_no_cookie(console: Console) -> None:
    reply = await console.browser().post("/login", data={"token": "not-a-jwt"})
    assert reply.status_code == 401
    assert "Sign-in refused: malformed token" in reply.text
    assert "set-cookie" not in reply.headers


async def test_a_page_without_a_session_sends_the_browser_to_login(console: Console) -> None:
    reply = await console.browser().get("/approvals")
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/login?message=Sign%20in") and "next=/approvals" in reply.headers[
        "location"
    ].replace("%2F", "/")


async def test_an_expired_session_goes_back_to_login_saying_it_expired(console: Console) -> None:
    browser = console.browser()
    browser.cookies.set("countermand_session", console.issuer.mint("carol", [V], ttl_s=-120))
    reply = await browser.get("/live")
    assert reply.status_code == 303
    login = await browser.get(reply.headers["location"])
    assert "Your session expired: sign in again" in login.text
    stream = await browser.get("/events")
    assert stream.status_code == 401  # the live pages' stream ends; their script asks /api/session and goes to login
    assert (await browser.get("/api/session")).status_code == 401


async def test_login_never_sends_the_browser_to_another_site(console: Console) -> None:
    reply = await console.browser().post(
        "/login", data={"token": console.issuer.mint("carol", [V]), "next": "//evil.example/x"}
    )
    assert reply.headers["location"] == "/"


async def test_a_post_from_another_site_is_refused(console: Console) -> None:
    browser = await console.signed_in("bob", A)
    reply = await browser.post("/approvals/p-1/approve", headers={"Origin": "http://evil.example"})
    assert reply.status_code == 403 and "cross-site" in reply.text


async def test_directive_pages_show_revisions_legal_basis_window_and_who_proposed_and_approved(
    console: Console,
) -> None:
    console.fold(TOPICS["directives"], issued())
    console.fold(
        TOPICS["directives"],
        issued(
            revision=2,
            title="Export control, amended",
            proposed_by="dave",
            approved_by=["erin", "frank"],
            emergency=False,
        ),
    )
    console.fold(TOPICS["directives"], issued(revision=1, title="late old revision"))  # ignored
    browser = await console.signed_in("carol", V)
    listing = (await browser.get("/directives")).text
    assert "EXP-1" in listing and "Export control, amended" in listing and "Order 2026/17" in listing
    detail = (await browser.get("/directives/EXP-1")).text
    assert "Revision 2" in detail and "Revision 1" in detail and "late old revision" not in detail
    assert "dave" in detail and "erin, frank" in detail and "alice" in detail and "bob" in detail
    missing = await browser.get("/directives/NOPE-1")
    assert missing.status_code == 404 and "No directive" in missing.text


async def test_live_page_shows_each_cluster_state_deadline_and_time_to_enforce(console: Console) -> None:
    console.fold(TOPICS["directives"], issued())
    console.fold(
        TOPICS["enforcement"], progressed(**{"us-east": "applied", "eu-west": "pending", "ap-south": "drifted"})
    )
    browser = await console.signed_in("carol", V)
    live = (await browser.get("/live")).text
    for cluster, state in (("us-east", "applied"), ("eu-west", "pending"), ("ap-south", "drifted")):
        assert f'data-cluster="{cluster}"' in live and f'<span class="state {state}">{state}</span>' in live
    assert "data-deadline=" in live
    console.fold(TOPICS["enforcement"], enforced("EXP-1", "us-east", "eu-west", "ap-south"))
    live = (await browser.get("/live")).text
    assert "<strong>enforced</strong>" in live and "2.50 s" in live  # the slowest cluster's ack latency
    assert live.count("(as expected)") == 3
    assert "pending" not in live.split("Live enforcement", 1)[1].split("</table>")[0].split("<tbody>")[1]


async def test_clusters_page_shows_models_held_digests_heartbeat_and_latest_ack(console: Console) -> None:
    console.fold(TOPICS["acks"], heartbeat("us-east"))
    console.fold(TOPICS["acks"], applied("us-east"))
    console.fold(TOPICS["acks"], applied("us-east"))  # another event id: both kept
    browser = await console.signed_in("carol", V)
    page = (await browser.get("/clusters")).text
    assert "us-east-1" in page and "fable-5" in page and "EXP-1 r1" in page and "dddddddddddd" in page
    assert "applied restrict EXP-1 r1" in page
    board = (await browser.get("/api/board")).json()
    assert board["clusters"][0]["last_heartbeat"].startswith("2026-12-07T05:00")
    assert len(board["clusters"][0]["acks"]) == 2


async def test_a_record_that_is_not_a_message_of_its_topic_is_skipped_and_the_feed_goes_on(console: Console) -> None:
    console.feed.fold(TOPICS["directives"], b'{"type": "DirectiveIssued", "directive_id": 5}')
    console.feed.fold(TOPICS["directives"], b"\xff not json")
    console.fold(TOPICS["directives"], issued())
    assert console.feed.skipped == 2 and console.board.directive("EXP-1") is not None


async def test_a_change_read_from_kafka_is_pushed_to_every_open_event_stream(console: Console) -> None:
    hub: Hub = console.hub
    first, second = hub.open(), hub.open()
    console.fold(TOPICS["directives"], issued())
    console.fold(TOPICS["enforcement"], progressed(**{"us-east": "applied"}))
    for stream in (first, second):
        events = [stream.get_nowait(), stream.get_nowait()]
        assert [e for e, _ in events] == ["directive", "directive"]
        assert json.loads(events[1][1])["rollout"]["clusters"]["us-east"]["state"] == "applied"


async def test_a_stream_too_slow_to_keep_up_is_dropped_not_allowed_to_grow(console: Console) -> None:
    hub = Hub(depth=2)
    stream = hub.open()
    for _ in range(3):
        hub.send("cluster", {"n": 1})
    assert stream not in hub.streams


async def test_a_viewer_cannot_approve_and_nothing_is_published(console: Console) -> None:
    proposer = await console.signed_in("alice", P)
    proposed = await proposer.post("/draft", data={"directive": MISSION_YAML, "action": "propose"})
    proposal_id = _proposal_id(proposed.text)
    viewer = await console.signed_in("carol", V)
    reply = await viewer.post(f"/approvals/{proposal_id}/approve", data={"reason": ""})
    assert reply.status_code == 403 and "needs role approver" in reply.text
    assert [e.type for e in console.directives.events] == ["DirectiveProposed"]


async def test_a_proposer_cannot_approve_their_own_proposal(console: Console) -> None:
    alice = await console.signed_in("alice", P, A)
    proposal_id = _proposal_id((await alice.post("/draft", data={"directive": MISSION_YAML, "action": "propose"})).text)
    reply = await alice.post(f"/approvals/{proposal_id}/approve", data={"reason": "mine"})
    assert reply.status_code == 403 and "Intake refused to approve" in reply.text
    assert "alice proposed" in reply.text and "cannot approve it" in reply.text
    assert [e.type for e in console.directives.events] == ["DirectiveProposed"]


async def test_propose_then_approve_as_another_user_issues_the_directive(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    proposal_id = _proposal_id((await alice.post("/draft", data={"directive": MISSION_YAML, "action": "propose"})).text)
    bob = await console.signed_in("bob", A)
    queue = (await bob.get("/approvals")).text
    assert proposal_id in queue and "alice" in queue
    reply = await bob.post(f"/approvals/{proposal_id}/approve", data={"reason": "checked the order"})
    assert reply.status_code == 200 and f"Approved proposal {proposal_id}: now issued" in reply.text
    issued_event = console.directives.events[-1]
    assert issued_event.type == "DirectiveIssued" and issued_event.approved_by == ["bob"]
    assert issued_event.proposed_by == "alice"


async def test_two_approvers_racing_on_one_proposal_issue_it_once(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    proposal_id = _proposal_id((await alice.post("/draft", data={"directive": MISSION_YAML, "action": "propose"})).text)
    bob, erin = await console.signed_in("bob", A), await console.signed_in("erin", A)
    replies = await asyncio.gather(
        bob.post(f"/approvals/{proposal_id}/approve", data={}),
        erin.post(f"/approvals/{proposal_id}/approve", data={}),
    )
    assert sorted(r.status_code for r in replies) == [200, 409]
    loser = next(r for r in replies if r.status_code == 409)
    assert "Intake refused to approve" in loser.text
    assert [e.type for e in console.directives.events].count("DirectiveIssued") == 1


async def test_reject_needs_a_reason_and_records_it(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    proposal_id = _proposal_id((await alice.post("/draft", data={"directive": MISSION_YAML, "action": "propose"})).text)
    bob = await console.signed_in("bob", A)
    refused = await bob.post(f"/approvals/{proposal_id}/reject", data={"reason": ""})
    assert refused.status_code == 422 and "Intake refused to reject" in refused.text
    done = await bob.post(f"/approvals/{proposal_id}/reject", data={"reason": "scope too wide"})
    assert done.status_code == 200 and "now rejected" in done.text
    assert console.directives.events[-1].reason == "scope too wide"


async def test_a_dry_run_shows_counts_charts_and_samples_and_forwards_the_users_token(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    reply = await alice.post("/draft", data={"directive": MISSION_YAML, "action": "preview"})
    assert reply.status_code == 200
    assert 'data-testid="affected-users">415<' in reply.text and 'data-count="fable-5">412<' in reply.text
    assert 'data-count="DE">120<' in reply.text and 'data-count="employee">15<' in reply.text
    assert "<svg" in reply.text and "3, 8, 13" in reply.text
    assert 'data-testid="losing-users">171<' in reply.text
    losing = {
        cid: chart_counts(reply.text, cid) for cid in ("losing-by-model", "losing-by-country", "losing-by-account")
    }
    assert losing == {
        "losing-by-model": {"fable-5": "157", "mythos-5": "61"},
        "losing-by-country": {"US": "90", "DE": "51", "IN": "30"},
        "losing-by-account": {"consumer": "140", "employee": "9", "enterprise_member": "22"},
    }
    assert model_row(reply.text, "mythos-5") == {"covered": "398", "losing": "61"}
    assert 'id="amends"' not in reply.text  # a new directive amends nothing
    [call] = console.impact.calls
    assert call["body"]["scope"] == SCOPE and call["authorization"].startswith("Bearer ")
    assert console.directives.events == []  # a dry run proposes nothing


async def test_a_dry_run_of_an_amendment_shows_the_difference_from_the_revision_in_force(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    amended = MISSION_YAML.replace("EXP-9", "EXP-1")
    text = (await alice.post("/draft", data={"directive": amended, "action": "preview"})).text
    assert 'data-testid="amends-revision">1<' in text
    assert model_row(text, "fable-5") == {
        "covered": "412",
        "losing": "157",
        "added": "12",
        "losing-added": "7",
        "removed": "33",
        "losing-removed": "19",
    }


async def test_a_draft_with_errors_shows_each_field_inline_and_proposes_nothing(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    bad = MISSION_YAML.replace("home_country: US", "home_country: XX").replace("title: Export control\n", "")
    preview = await alice.post("/draft", data={"directive": bad, "action": "preview"})
    assert preview.status_code == 422 and 'data-field="scope.selector.home_country"' in preview.text
    proposed = await alice.post("/draft", data={"directive": bad, "action": "propose"})
    assert proposed.status_code == 422
    assert 'data-field="title"' in proposed.text and 'data-field="scope.selector.home_country"' in proposed.text
    assert "Nothing was proposed" in proposed.text and 'aria-invalid="true"' in proposed.text
    not_yaml = await alice.post("/draft", data={"directive": "scope: [unclosed", "action": "propose"})
    assert not_yaml.status_code == 422 and "not valid YAML or JSON at line 1" in not_yaml.text
    assert console.directives.events == []


async def test_an_uploaded_file_is_dry_run_and_proposed_as_a_plain_multipart_form_without_script(
    console: Console,
) -> None:
    alice = await console.signed_in("alice", P)
    upload = {"directive_file": ("order.yaml", MISSION_YAML.encode(), "application/x-yaml")}
    previewed = await alice.post("/draft", data={"directive": "", "action": "preview"}, files=upload)
    assert previewed.status_code == 200 and 'data-testid="affected-users">415<' in previewed.text
    assert "directive_id: EXP-9" in previewed.text  # the file's text is shown back to edit
    [call] = console.impact.calls
    assert call["body"]["directive_id"] == "EXP-9" and call["body"]["scope"] == SCOPE
    proposed = await alice.post("/draft", data={"action": "propose"}, files=upload)
    assert proposed.status_code == 200 and _proposal_id(proposed.text)
    assert [e.directive_id for e in console.directives.events] == ["EXP-9"]
    empty_file = {"directive_file": ("", b"", "application/octet-stream")}  # no file chosen: the text is used
    typed = await alice.post("/draft", data={"directive": MISSION_YAML, "action": "preview"}, files=empty_file)
    assert typed.status_code == 200 and len(console.impact.calls) == 2


async def test_an_upload_that_is_not_text_is_named_and_nothing_is_asked_or_proposed(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    binary = {"directive_file": ("order.pdf", b"%PDF-1.7\n\xff\xfe\x00", "application/pdf")}
    refused = await alice.post("/draft", data={"action": "propose"}, files=binary)
    assert refused.status_code == 422 and 'data-field="directive_file"' in refused.text
    assert "is not UTF-8 text" in refused.text and "Nothing was proposed" in refused.text
    huge = {"directive_file": ("order.yaml", b"#" * (300 * 1024), "application/x-yaml")}
    too_large = await alice.post("/draft", data={"action": "propose"}, files=huge)
    assert too_large.status_code == 413 and "larger than 256 KiB" in too_large.text
    assert console.impact.calls == [] and console.directives.events == []


async def test_a_viewer_may_dry_run_but_not_propose(console: Console) -> None:
    carol = await console.signed_in("carol", V)
    assert (await carol.post("/draft", data={"directive": MISSION_YAML, "action": "preview"})).status_code == 200
    refused = await carol.post("/draft", data={"directive": MISSION_YAML, "action": "propose"})
    assert refused.status_code == 403 and "needs the role proposer" in refused.text
    assert console.directives.events == []


async def test_customer_lookup_shows_the_audits_explanation_per_cluster(console: Console) -> None:
    auditor = await console.signed_in("ivy", AU)
    page = await auditor.get("/lookup", params={"user": "42", "model": "fable-5", "at": "2026-12-07T05:00:00Z"})
    assert page.status_code == 200 and 'data-testid="verdict">denied everywhere<' in page.text
    assert '<tr data-cluster="us-east"><th scope="row">us-east</th><td data-field="decision">denied<' in page.text
    assert 'EXP-1 revision 1: <span data-field="covered">covers</span> this user' in page.text
    assert console.audit.calls == [{"user": "42", "model": "fable-5", "at": "2026-12-07T05:00:00Z"}]


async def test_customer_lookup_names_each_bad_field_and_asks_nothing(console: Console) -> None:
    auditor = await console.signed_in("ivy", AU)
    page = await auditor.get("/lookup", params={"user": "bob", "model": "", "at": "2026-12-07T05:00:00Z"})
    assert page.status_code == 422
    assert 'id="user-error"' in page.text and "a user id is a whole number" in page.text
    assert 'id="model-error"' in page.text and console.audit.calls == []


async def test_an_unreachable_service_is_said_so_on_the_page(tmp_path: Path) -> None:
    console = Console(tmp_path, unreachable=True)
    auditor = await console.signed_in("ivy", AU)
    page = await auditor.get("/lookup", params={"user": "1", "model": "fable-5", "at": "2026-12-07T05:00:00Z"})
    assert page.status_code == 502 and "audit could not be reached" in page.text


async def test_health_readiness_and_metrics_answer(console: Console) -> None:
    browser = console.browser()
    assert (await browser.get("/healthz")).status_code == 200
    assert (await browser.get("/readyz")).status_code == 503  # not caught up with the topics yet
    console.feed.caught_up = True
    assert (await browser.get("/readyz")).status_code == 200
    metrics = await browser.get("/metrics")
    assert metrics.status_code == 200 and "# TYPE" in metrics.text


def _proposal_id(page: str) -> str:
    marker = 'data-testid="proposal-id">'
    assert marker in page, page[-2000:]
    return page.split(marker, 1)[1].split("<", 1)[0]


async def test_a_lift_proposed_from_the_directive_page_waits_for_another_approver(console: Console) -> None:
    alice = await console.signed_in("alice", P)
    proposal_id = _proposal_id((await alice.post("/draft", data={"directive": MISSION_YAML, "action": "propose"})).text)
    bob = await console.signed_in("bob", A)
    await bob.post(f"/approvals/{proposal_id}/approve", data={})
    console.fold(TOPICS["directives"], console.directives.events[-1])
    assert "Propose a lift" in (await alice.get("/directives/EXP-9")).text
    assert "Propose a lift" not in (await bob.get("/directives/EXP-9")).text  # not a proposer
    proposed = await alice.post("/directives/EXP-9/lift", data={"reason": "order withdrawn"})
    assert proposed.status_code == 200 and "Proposed the lift of EXP-9" in proposed.text
    assert console.directives.events[-1].type == "DirectiveProposed" and console.directives.events[-1].action == "lift"
    unknown = await alice.post("/directives/NOPE-1/lift", data={"reason": "x"})
    assert unknown.status_code == 404 and "Intake refused the lift" in unknown.text


async def test_audit_page_shows_the_timeline_checkpoints_and_offers_the_report(console: Console) -> None:
    console.fold(TOPICS["directives"], issued())
    console.fold(TOPICS["enforcement"], enforced("EXP-1", "us-east"))
    console.fold(TOPICS["audit"], checkpoint(10, "a" * 64, signed=True))
    console.fold(TOPICS["audit"], checkpoint(25, "b" * 64, signed=True))
    carol = await console.signed_in("carol", AU)
    page = (await carol.get("/audit")).text
    assert "revision 1 issued (proposed by alice, approved by bob)" in page
    assert "restrict of revision 1 enforced on 1 clusters" in page
    assert "Every checkpoint is signed and the ledger only grew (25 entries" in page
    report = await carol.get("/audit/report.json", params={"directive": "EXP-1"})
    assert "attachment" in report.headers["content-disposition"]
    assert [e["directive_id"] for e in report.json()["timeline"]] == ["EXP-1", "EXP-1"]
    console.fold(TOPICS["audit"], checkpoint(25, "c" * 64, signed=False))  # another head for the same size
    flagged = (await carol.get("/audit")).text
    assert "two heads for 25 entries" in flagged and "without a signed tree head" in flagged


async def test_a_digest_other_than_the_one_expected_is_shown_as_such(console: Console) -> None:
    from shared.contracts.enforcement import ClusterProgress

    event = progressed(**{"us-east": "drifted"})
    event.clusters["us-east"] = ClusterProgress(state="drifted", attempts=2, digest="0" * 64)
    console.fold(TOPICS["directives"], issued())
    console.fold(TOPICS["enforcement"], event)
    live = (await (await console.signed_in("carol", V)).get("/live")).text
    assert "000000000000</code> (expected dddddddddddd)" in live


async def test_the_audit_page_downloads_the_audits_own_json_and_html_report_of_a_directive(
    on_the_audit: Console,
) -> None:
    auditor = await on_the_audit.signed_in("ann", AU)
    page = await auditor.get("/audit", params={"directive": "EXP-9"})
    assert (
        'href="/audit/reports/EXP-9?format=html"' in page.text
        and 'href="/audit/reports/EXP-9?format=json"' in page.text
    )
    as_json = await auditor.get("/audit/reports/EXP-9", params={"format": "json"})
    assert as_json.status_code == 200
    assert as_json.headers["content-disposition"] == 'attachment; filename="countermand-report-EXP-9.json"'
    report = DirectiveReport.model_validate(as_json.json())
    assert report.directive_id == "EXP-9" and {c.cluster for c in report.clusters} == {"us-east", "eu-west", "ap-south"}
    as_html = await auditor.get("/audit/reports/EXP-9", params={"format": "html"})
    assert as_html.status_code == 200 and as_html.headers["content-type"].startswith("text/html")
    assert "<title>Directive EXP-9: audit report</title>" in as_html.text
    missing = await auditor.get("/audit/reports/EXP-404")
    assert missing.status_code == 404 and "no DirectiveIssued for &#39;EXP-404&#39;" in missing.text
    viewer = await on_the_audit.signed_in("carol", V)
    assert "report needs the auditor role" in (await viewer.get("/audit", params={"directive": "EXP-9"})).text
    assert (await viewer.get("/audit/reports/EXP-9")).status_code == 403


async def test_customer_lookup_shows_the_real_audits_answer_for_a_covered_and_an_uncovered_user(
    on_the_audit: Console,
) -> None:
    auditor = await on_the_audit.signed_in("ivy", AU)
    at = "2026-03-03T13:01:40Z"  # eu-west acknowledged, ap-south holds a wrong digest, notices sent
    covered = (await auditor.get("/lookup", params={"user": "8", "model": "fable-5", "at": at})).text
    assert 'data-testid="verdict">denied on some clusters only<' in covered
    assert decisions(covered) == {
        "ap-south": "allowed, but should have been denied (not yet enforced)",
        "eu-west": "denied",
        "us-east": "denied",
    }
    assert 'EXP-9 revision 1: <span data-field="covered">covers</span>' in covered
    assert '<span data-field="requested">yes</span>, delivered: <span data-field="delivered">yes</span>' in covered
    assert "<td>NotificationDelivered</td>" in covered
    uncovered = (await auditor.get("/lookup", params={"user": "10", "model": "fable-5", "at": at})).text
    assert 'data-testid="verdict">allowed everywhere<' in uncovered
    assert set(decisions(uncovered).values()) == {"allowed"}
    assert 'EXP-9 revision 1: <span data-field="covered">does not cover</span>' in uncovered
    assert '<span data-field="requested">no</span>' in uncovered


def decisions(html: str) -> dict[str, str]:
    return dict(
        re.findall(r'<tr data-cluster="([^"]+)"><th scope="row">[^<]*</th><td data-field="decision">([^<]*)<', html)
    )


async def test_pages_inline_their_style_allowed_by_its_hash_and_defer_their_only_script(console: Console) -> None:
    carol = await console.signed_in("carol", V)
    reply = await carol.get("/live")
    style = re.search(r"<style>(.*?)</style>", reply.text, re.S)
    assert style and ":focus-visible" in style.group(1)  # the stylesheet itself, nothing to fetch before painting
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'self' 'sha256-{digest}'" in reply.headers["content-security-policy"]
    assert 'rel="stylesheet"' not in reply.text
    assert re.findall(r"<script[^>]*>", reply.text) == ['<script src="/static/console.js" defer>']


async def test_an_open_event_stream_ends_when_its_session_expires(console: Console) -> None:
    browser = console.browser()
    # expired a moment ago, still inside the 30 s of clock skew every service tolerates: accepted for about five seconds
    browser.cookies.set("countermand_session", console.issuer.mint("carol", [V], ttl_s=-25))
    stream = await asyncio.wait_for(browser.get("/events"), 60)  # returns only once the server ends the stream
    assert stream.status_code == 200 and stream.text.startswith("retry: 1000")
    assert (await browser.get("/api/session")).status_code == 401  # what the page's script then finds
