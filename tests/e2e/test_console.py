"""The console in a real browser (Debian's headless Chromium, driven by Playwright) against a running stack on real
Kafka: sign in, dry-run the mission and read its counts from the page, propose as one user and approve as another,
watch every cluster turn applied without a reload, lift; and each bad input the console must refuse or survive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.scenarios import MISSION_FILE, mission_body
from devtools.stack import Stack
from devtools.waiting import eventually
from shared.contracts.catalogue import DIRECTIVES
from shared.contracts.directives import DirectiveIssued
from shared.runtime.auth import Role
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 120_000  # generous: the machine is shared; nothing here is a timing assertion
P, A, V, AU = Role.PROPOSER, Role.APPROVER, Role.VIEWER, Role.AUDITOR
REGISTRY = registry_population.generate(600, seed=5)
MISSION = mission_body()
CLUSTERS = ("us-east", "eu-west", "ap-south")


def small_order(directive_id: str) -> str:
    return f"""directive_id: {directive_id}
title: "Order for {directive_id}"
authority: "Test order"
scope:
  models: [lyric-4]
  selector: {{kind: nationality, any_of: [RU]}}
  enforcement_deadline_s: 120
"""


@pytest.fixture(scope="module")
def console_kafka(kafka_dir: Path, kafka_secrets: Path) -> LocalBroker:
    """A broker of its own: one test stops it and starts it again."""
    broker = LocalBroker(kafka_dir.with_name("console-kafka"), secrets=kafka_secrets)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
async def stack(console_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    bootstrap = console_kafka.bootstrap
    await apply_topics(KafkaSettings(bootstrap=bootstrap))
    running = Stack(bootstrap, tmp_path_factory.mktemp("console-stack"), access=console_kafka.access, console=True)
    await asyncio.to_thread(running.start)
    try:
        await load_registry(bootstrap, REGISTRY)
        yield running
    finally:
        await asyncio.to_thread(running.stop)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()


class Person:
    """One signed-in browser context."""

    def __init__(self, context: BrowserContext, page: Page, base: str) -> None:
        self.context, self.page, self.base = context, page, base

    async def goto(self, path: str) -> Page:
        await self.page.goto(self.base + path)
        return self.page


async def sign_in(browser: Browser, stack: Stack, subject: str, *roles: Role, ttl_s: float = 3600) -> Person:
    """Sign in through the login page with a token of the stack's identity provider."""
    context = await browser.new_context()
    page = await context.new_page()
    base = stack.service("console").url
    await page.goto(base + "/login")
    await page.get_by_label("Access token from your identity provider").fill(stack.issuer.mint(subject, roles, ttl_s))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("who")).to_contain_text(subject)
    return Person(context, page, base)


async def propose(person: Person, text: str) -> str:
    page = await person.goto("/draft")
    await page.get_by_label("Directive (YAML or JSON").fill(text)
    await page.get_by_role("button", name="Propose").click()
    await expect(page.get_by_test_id("proposal-id")).to_be_visible(timeout=WAIT_MS)
    return await page.get_by_test_id("proposal-id").inner_text()


async def decide(person: Person, proposal_id: str, button: str, reason: str = "") -> Page:
    page = await person.goto("/approvals")
    card = page.locator(f'[data-proposal="{proposal_id}"]')
    if reason:
        await card.get_by_label("Reason").fill(reason)
    await card.get_by_role("button", name=button).click()
    await expect(page.locator("#outcome")).to_be_visible(timeout=WAIT_MS)
    return page


def intake_proposals(stack: Stack) -> list[dict]:
    reply = httpx.get(f"{stack.intake.url}/proposals", params={"all": "true"}, headers=stack.token("t", V), timeout=30)
    reply.raise_for_status()
    return reply.json()


def preview(stack: Stack) -> dict:
    reply = httpx.post(f"{stack.impact.url}/directives/preview", json=MISSION, headers=stack.token("t", V), timeout=60)
    reply.raise_for_status()
    return reply.json()


async def settled_preview(stack: Stack) -> dict:
    """Impact's dry run of the mission once its user view has read the whole registry (two answers alike)."""
    seen: list[dict] = []

    async def stable() -> dict | None:
        seen.append(await asyncio.to_thread(preview, stack))
        await asyncio.sleep(1)
        return seen[-1] if len(seen) > 1 and seen[-1] == seen[-2] and seen[-1]["affected_users"] else None

    return await eventually(stable, "impact's view of the registry to settle", timeout=120)


async def chart_total(page: Page, chart: str) -> int:
    """The sum of a chart's data table on the page."""
    cells = await page.locator(f'[data-chart="{chart}"] [data-count]').all_inner_texts()
    return sum(int(c) for c in cells)


def registry_users() -> list[dict]:
    return registry_population.records(REGISTRY, 0, len(REGISTRY))


def explained(stack: Stack, user: int, model: str, at: str) -> dict:
    """The audit's own answer (`GET /v1/explain`), asked with an auditor's token."""
    params = {"user": user, "model": model, "at": at}
    reply = httpx.get(
        f"{stack.service('audit').url}/v1/explain", params=params, headers=stack.token("t", AU), timeout=60
    )
    reply.raise_for_status()
    return reply.json()


async def looked_up_as_the_audit_answers(person: Person, stack: Stack) -> None:
    """Customer lookup for a user the mission takes fable-5 from (a foreign national entitled to it) and for a US
    national it does not cover: the page shows what the running audit answers, notices included."""
    users = registry_users()
    affected = next(
        u for u in users if u["nationalities"] and "US" not in u["nationalities"] and "fable-5" in u["entitlements"]
    )
    unaffected = next(u for u in users if u["nationalities"] and "US" in u["nationalities"])
    directive = MISSION["directive_id"]

    async def page_for(user: dict, settled: Callable[[dict], bool]) -> tuple[Page, dict]:
        async def answered() -> tuple[Page, dict] | None:
            at = datetime.now(UTC).isoformat()
            truth = await asyncio.to_thread(explained, stack, user["user_id"], "fable-5", at)
            if not settled(truth):
                await asyncio.sleep(1)
                return None
            page = await person.goto(f"/lookup?user={user['user_id']}&model=fable-5&at={quote(at)}")
            return page, truth

        return await eventually(answered, f"the audit's answer for user {user['user_id']}", timeout=180)

    def enforced_and_told(truth: dict) -> bool:  # every cluster acknowledged in the ledger, the notice delivered
        mine = [d for d in truth["directives"] if d["directive_id"] == directive]
        return truth["denied_everywhere"] and bool(mine) and mine[0]["notice"]["delivered"]

    page, truth = await page_for(affected, enforced_and_told)
    await expect(page.get_by_test_id("verdict")).to_have_text("denied everywhere")
    for cluster in CLUSTERS:
        row = page.locator(f'#decisions tr[data-cluster="{cluster}"]')
        await expect(row.locator('[data-field="decision"]')).to_have_text(truth["clusters"][cluster]["decision"])
        await expect(row.locator('[data-field="by"]')).to_have_text(directive)
    card = page.locator(f'section[data-directive="{directive}"]')
    await expect(card.locator('[data-field="covered"]')).to_have_text("covers")
    await expect(card.locator('[data-field="requested"]')).to_have_text("yes")
    await expect(card.locator('[data-field="delivered"]')).to_have_text("yes")
    [notices] = [d["notice"]["events"] for d in truth["directives"] if d["directive_id"] == directive]
    await expect(card.locator('[data-field="notices"] tbody tr')).to_have_count(len(notices))
    await expect(card.locator('[data-field="notices"]')).to_contain_text("NotificationDelivered")

    page, truth = await page_for(unaffected, lambda t: bool(t["clusters"]))
    assert not truth["denied_everywhere"]
    await expect(page.get_by_test_id("verdict")).to_have_text("allowed everywhere")
    for cluster in CLUSTERS:
        row = page.locator(f'#decisions tr[data-cluster="{cluster}"]')
        await expect(row.locator('[data-field="decision"]')).to_have_text("allowed")
    card = page.locator(f'section[data-directive="{directive}"]')
    await expect(card.locator('[data-field="covered"]')).to_have_text("does not cover")
    await expect(card.locator('[data-field="requested"]')).to_have_text("no")


async def reports_downloaded_from_the_audit(person: Person, stack: Stack, folder: Path) -> None:
    """The audit page's downloads are the running audit's report of the directive, JSON and HTML."""
    directive = MISSION["directive_id"]
    page = await person.goto(f"/audit?directive={directive}")
    files = {}
    for kind in ("json", "html"):
        async with page.expect_download() as started:
            await page.get_by_test_id(f"report-{kind}").click()
        download = await started.value
        assert download.suggested_filename == f"countermand-report-{directive}.{kind}"
        files[kind] = folder / download.suggested_filename
        await download.save_as(files[kind])
    report = json.loads(files["json"].read_text())
    assert report["directive_id"] == directive and [r["revision"] for r in report["revisions"]] == [1]
    assert report["revisions"][0]["proposed_by"] == "alice" and report["revisions"][0]["approved_by"] == "bob"
    assert {c["cluster"] for c in report["clusters"]} == set(CLUSTERS)
    assert report["checkpoint"]["chain_intact"] is True
    html = files["html"].read_text()
    assert f"<title>Directive {directive}: audit report</title>" in html
    assert f'<span data-testid="directive-id">{directive}</span>' in html


async def test_mission_previewed_proposed_approved_watched_live_looked_up_reported_and_lifted(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    answer = await settled_preview(stack)
    alice = await sign_in(browser, stack, "alice", P, V)
    page = await alice.goto("/draft")
    await page.get_by_label("Directive (YAML or JSON").fill(MISSION_FILE.read_text())
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.get_by_test_id("affected-users")).to_be_visible(timeout=WAIT_MS)
    shown = int(await page.get_by_test_id("affected-users").inner_text())
    per_model = {
        m: int(await page.locator(f'[data-chart="by-model"] [data-count="{m}"]').inner_text())
        for m in MISSION["scope"]["models"]
    }
    assert shown == answer["affected_users"] > 0 and per_model == answer["affected_by_model"]
    assert await page.locator('[data-chart="by-country"] tbody tr').count() >= 1
    losing = int(await page.get_by_test_id("losing-users").inner_text())
    losing_per_model = {
        m: int(await page.locator(f'[data-chart="losing-by-model"] [data-count="{m}"]').inner_text())
        for m in MISSION["scope"]["models"]
    }
    assert losing == answer["losing_users"] and losing_per_model == answer["losing_by_model"]
    assert 0 < losing < shown and all(losing_per_model[m] <= per_model[m] for m in per_model)  # entitled ones only
    assert await chart_total(page, "losing-by-country") == await chart_total(page, "losing-by-account") == losing

    watcher = await sign_in(browser, stack, "carol", V)
    live = await watcher.goto("/live")
    await live.evaluate("window.__sameDocument = true")  # gone if the page were reloaded

    proposal_id = await propose(alice, MISSION_FILE.read_text())
    bob = await sign_in(browser, stack, "bob", A, V)
    approved = await decide(bob, proposal_id, "Approve", "checked against the order")
    await expect(approved.locator("#outcome")).to_contain_text("now issued")

    section = live.locator(f'section[data-directive="{MISSION["directive_id"]}"]')
    for cluster in CLUSTERS:
        await expect(section.locator(f'tr[data-cluster="{cluster}"] .state')).to_have_text("applied", timeout=WAIT_MS)
    await expect(section.locator('[data-field="tte"]')).to_be_visible(timeout=WAIT_MS)
    assert await live.evaluate("window.__sameDocument === true")

    ivy = await sign_in(browser, stack, "ivy", AU)
    await looked_up_as_the_audit_answers(ivy, stack)
    await reports_downloaded_from_the_audit(ivy, stack, tmp_path)

    detail = await alice.goto(f"/directives/{MISSION['directive_id']}")
    await expect(detail.get_by_test_id("proposed-by")).to_have_text("alice")
    await expect(detail.get_by_test_id("approved-by")).to_have_text("bob")
    await detail.get_by_label("Reason").fill("order withdrawn")
    await detail.get_by_role("button", name="Propose lift").click()
    await expect(detail.locator("#outcome")).to_contain_text("Proposed the lift", timeout=WAIT_MS)
    lift_id = next(
        p["proposal_id"] for p in intake_proposals(stack) if p["action"] == "lift" and p["state"] == "pending"
    )
    await decide(bob, lift_id, "Approve")
    await expect(section.locator('[data-field="meta"]')).to_contain_text("lift of revision 1", timeout=WAIT_MS)
    for cluster in CLUSTERS:
        await expect(section.locator(f'tr[data-cluster="{cluster}"] .state')).to_have_text("applied", timeout=WAIT_MS)
    await expect(section.locator('[data-field="tte"]')).to_be_visible(timeout=WAIT_MS)
    assert await live.evaluate("window.__sameDocument === true")
    clusters = await watcher.goto("/clusters")
    await expect(clusters.locator("#clusters tbody tr")).to_have_count(len(CLUSTERS))


async def test_a_directive_file_uploaded_without_javascript_is_dry_run(browser: Browser, stack: Stack) -> None:
    answer = await settled_preview(stack)
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    base = stack.service("console").url
    await page.goto(base + "/login")
    await page.get_by_label("Access token from your identity provider").fill(stack.issuer.mint("alice", [P], 3600))
    await page.get_by_role("button", name="Sign in").click()
    await page.goto(base + "/draft")
    await page.get_by_label("directive file").set_input_files(MISSION_FILE)
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.get_by_test_id("affected-users")).to_have_text(str(answer["affected_users"]), timeout=WAIT_MS)
    await expect(page.get_by_test_id("losing-users")).to_have_text(str(answer["losing_users"]))
    await expect(page.get_by_label("Directive (YAML or JSON")).to_have_value(MISSION_FILE.read_text())
    await context.close()


async def test_a_draft_with_errors_is_shown_field_by_field_and_nothing_is_proposed(
    browser: Browser, stack: Stack
) -> None:
    alice = await sign_in(browser, stack, "alice", P)
    bad = small_order("E2E-BAD-1").replace("[RU]", "[XX]").replace("models: [lyric-4]", "models: []")
    page = await alice.goto("/draft")
    await page.get_by_label("Directive (YAML or JSON").fill(bad)
    await page.get_by_role("button", name="Propose").click()
    problems = page.locator("#problems")
    await expect(problems).to_contain_text("Nothing was proposed", timeout=WAIT_MS)
    await expect(problems.locator('li[data-field="scope.models"]')).to_be_visible()
    await expect(problems.locator('li[data-field^="scope.selector"]')).to_be_visible()
    await expect(page.get_by_label("Directive (YAML or JSON")).to_have_attribute("aria-invalid", "true")
    assert not [p for p in intake_proposals(stack) if p["directive_id"] == "E2E-BAD-1"]


async def test_an_expired_session_is_sent_back_to_login_with_a_message(browser: Browser, stack: Stack) -> None:
    context = await browser.new_context()
    base = stack.service("console").url
    await context.add_cookies(
        [{"name": "countermand_session", "value": stack.issuer.mint("carol", [V], ttl_s=-120), "url": base}]
    )
    page = await context.new_page()
    await page.goto(base + "/live")
    await expect(page.locator("#login-message")).to_contain_text("Your session expired")
    assert page.url.startswith(base + "/login")


async def test_a_live_page_left_open_goes_to_login_when_its_session_expires(browser: Browser, stack: Stack) -> None:
    # expired 10 s ago: accepted for the 30 s of clock skew every service tolerates, then refused
    carol = await sign_in(browser, stack, "carol", V, ttl_s=-10)
    live = await carol.goto("/live")
    await expect(live.locator("#broker")).to_have_attribute("data-ok", "true", timeout=WAIT_MS)
    await expect(live.locator("#login-message")).to_contain_text("Your session expired", timeout=WAIT_MS)
    assert live.url.startswith(carol.base + "/login")


async def test_a_viewer_trying_to_approve_is_refused_and_the_proposal_stays_pending(
    browser: Browser, stack: Stack
) -> None:
    proposal_id = await propose(await sign_in(browser, stack, "alice", P), small_order("E2E-VIEWER-1"))
    carol = await sign_in(browser, stack, "carol", V)
    page = await decide(carol, proposal_id, "Approve")
    await expect(page.locator("#outcome")).to_contain_text("needs role approver")
    [proposal] = [p for p in intake_proposals(stack) if p["proposal_id"] == proposal_id]
    assert proposal["state"] == "pending" and proposal["approved_by"] == []


async def test_a_proposer_approving_their_own_proposal_is_refused(browser: Browser, stack: Stack) -> None:
    dave = await sign_in(browser, stack, "dave", P, A)
    proposal_id = await propose(dave, small_order("E2E-OWN-1"))
    page = await decide(dave, proposal_id, "Approve")
    await expect(page.locator("#outcome")).to_contain_text("dave proposed")
    await expect(page.locator("#outcome")).to_contain_text("cannot approve it")
    [proposal] = [p for p in intake_proposals(stack) if p["proposal_id"] == proposal_id]
    assert proposal["state"] == "pending"


async def test_two_approvers_racing_on_one_proposal_issue_it_once(browser: Browser, stack: Stack) -> None:
    proposal_id = await propose(await sign_in(browser, stack, "alice", P), small_order("E2E-RACE-1"))
    bob, erin = await sign_in(browser, stack, "bob", A), await sign_in(browser, stack, "erin", A)
    pages = [await bob.goto("/approvals"), await erin.goto("/approvals")]
    buttons = [p.locator(f'[data-proposal="{proposal_id}"]').get_by_role("button", name="Approve") for p in pages]
    await asyncio.gather(*(b.click() for b in buttons))
    outcomes = [await p.locator("#outcome").inner_text(timeout=WAIT_MS) for p in pages]
    assert sum("now issued" in o for o in outcomes) == 1, outcomes
    assert sum("Intake refused to approve" in o for o in outcomes) == 1, outcomes
    async with TopicReader(KafkaSettings(bootstrap=stack.bootstrap), DIRECTIVES) as topic:
        await topic.wait_for(
            lambda m: isinstance(m, DirectiveIssued) and m.directive_id == "E2E-RACE-1", 60, "the race's directive"
        )
        await topic.poll()
        issued = [m for m in topic.messages if isinstance(m, DirectiveIssued) and m.directive_id == "E2E-RACE-1"]
    assert len(issued) == 1


async def test_the_live_page_says_when_the_broker_goes_away_and_recovers(
    browser: Browser, stack: Stack, console_kafka: LocalBroker
) -> None:
    carol = await sign_in(browser, stack, "carol", V)
    live = await carol.goto("/live")
    banner = live.locator("#broker")
    await expect(banner).to_have_attribute("data-ok", "true", timeout=WAIT_MS)
    await live.evaluate("window.__sameDocument = true")
    await asyncio.to_thread(console_kafka.stop)
    try:
        await expect(banner).to_have_attribute("data-ok", "false", timeout=WAIT_MS)
        await expect(banner).to_contain_text("broker is unreachable")
    finally:
        await asyncio.to_thread(console_kafka.resume)
    await expect(banner).to_have_attribute("data-ok", "true", timeout=WAIT_MS)
    await expect(banner).to_contain_text("Live")
    await asyncio.to_thread(stack.issue, {**MISSION, "directive_id": "E2E-AFTER-OUTAGE"})  # updates flow again
    section = live.locator('section[data-directive="E2E-AFTER-OUTAGE"]')
    await expect(section).to_be_visible(timeout=WAIT_MS)
    assert await live.evaluate("window.__sameDocument === true")
