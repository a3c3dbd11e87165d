"""The console in a real browser (Debian's headless Chromium, driven by Playwright) against a running stack on real
Kafka: sign in, dry-run the mission and read its counts from the page, propose as one user and approve as another,
watch every cluster turn applied without a reload, lift; and each bad input the console must refuse or survive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

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
P, A, V = Role.PROPOSER, Role.APPROVER, Role.VIEWER
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
        await load_registry(bootstrap, registry_population.generate(600, seed=5))
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


async def test_mission_previewed_proposed_approved_watched_live_and_lifted(browser: Browser, stack: Stack) -> None:
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
