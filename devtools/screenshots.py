"""`make screenshots`: a stack with the console on a fresh local broker, the mission issued (four eyes) and an order
left awaiting approval, then a PNG of each console page from Debian's headless Chromium into docs/screenshots/."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Page, async_playwright

from devtools import ROOT
from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population
from devtools.registry.loader import load as load_registry
from devtools.scenarios import MISSION_FILE, OVERLAP, mission_body
from devtools.stack import Stack
from shared.contracts.catalogue import ENFORCEMENT
from shared.contracts.enforcement import DirectiveEnforced
from shared.runtime.auth import Role
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
MISSION = mission_body()


REGISTRY = population.generate(2000, seed=7)


def covered_user() -> int:
    """A user the mission takes fable-5 from: a foreign national of the US entitled to it."""
    return next(
        u["user_id"]
        for u in population.records(REGISTRY, 0, len(REGISTRY))
        if u["nationalities"] and "US" not in u["nationalities"] and "fable-5" in u["entitlements"]
    )


async def prepare(stack: Stack) -> None:
    """The mission issued and enforced; a second order proposed and left for an approver."""
    await load_registry(stack.bootstrap, REGISTRY)
    await asyncio.to_thread(stack.issue, MISSION)
    async with TopicReader(KafkaSettings(bootstrap=stack.bootstrap), ENFORCEMENT) as topic:
        await topic.wait_for(lambda m: isinstance(m, DirectiveEnforced), 180, "the mission enforced")
    await asyncio.to_thread(stack._intake, "POST", "/directives", stack.token("alice", Role.PROPOSER), json=OVERLAP)


async def shoot(page: Page, base: str, path: str, name: str) -> Path:
    await page.goto(base + path)
    target = OUT / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    return target


async def pages(base: str, token: str) -> list[Path]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
        taken = [await shoot(page, base, "/login", "login")]
        await page.get_by_label("Access token from your identity provider").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        for path, name in (
            ("/directives", "directives"),
            (f"/directives/{MISSION['directive_id']}", "directive"),
            ("/live", "live"),
            ("/approvals", "approvals"),
            ("/clusters", "clusters"),
            (f"/audit?directive={MISSION['directive_id']}", "audit"),
            (f"/lookup?user={covered_user()}&model=fable-5&at={quote(datetime.now(UTC).isoformat())}", "lookup"),
        ):
            taken.append(await shoot(page, base, path, name))
        await page.goto(base + "/draft")
        await page.get_by_label("Directive (YAML or JSON").fill(
            MISSION_FILE.read_text().replace("EXP-2026-001", "EXP-2026-002")
        )
        await page.get_by_role("button", name="Dry run").click()
        await page.locator("#preview").wait_for()
        target = OUT / "draft.png"
        await page.screenshot(path=str(target), full_page=True)
        taken.append(target)
        await browser.close()
    return taken


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as folder:
        broker = LocalBroker(Path(folder) / "kafka")
        broker.start()
        broker.access.export()  # this process (registry loader, topic reader) logs in as tooling
        stack = Stack(broker.bootstrap, Path(folder) / "stack", access=broker.access, console=True)
        try:
            await apply_topics(broker.access.settings())
            await asyncio.to_thread(stack.start, 180)
            await prepare(stack)
            token = stack.issuer.mint("alice@example.com", [Role.PROPOSER, Role.VIEWER, Role.AUDITOR])
            for path in await pages(stack.service("console").url, token):
                print(f"wrote {path.relative_to(ROOT)}")
        finally:
            await asyncio.to_thread(stack.stop)
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
