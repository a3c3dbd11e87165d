"""Benchmark of the console in Debian's headless Chromium: first paint of its pages with 50 directives and 30
clusters on the board, and how soon an acknowledgement produced to serving.acks.v1 shows in an open page.

The console runs as deployed (its own process and Kafka principal, on a real broker); the directives, their
enforcement status over 30 clusters and the clusters' heartbeats are produced straight to the topics it reads,
so the figures are the console's own. Writes bench/results/console.json.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Page, async_playwright

from devtools import ROOT
from devtools.broker import LocalBroker
from devtools.ports import free_port
from devtools.stack import Stack
from shared.contracts.catalogue import ACKS, DIRECTIVES, ENFORCEMENT, key_of
from shared.contracts.directives import DirectiveIssued
from shared.contracts.enforcement import ClusterProgress, EnforcementProgressed
from shared.contracts.envelope import envelope
from shared.contracts.serving import AgentHeartbeat, CommandApplied
from shared.runtime.auth import Role
from shared.runtime.kafka import producing
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

DIRECTIVES_N = 50
CLUSTERS_N = 30
PAINTS = 15
ACKS_N = 15
RESULTS = ROOT / "bench" / "results" / "console.json"
CHROMIUM = "/usr/bin/chromium"
SCOPE = {"models": ["fable-5"], "selector": {"kind": "nationality", "any_of": ["RU"]}}


def board_messages(now: datetime) -> list[tuple[object, object]]:
    """(topic, message) pairs: 50 directives enforced over 30 clusters in every state, 30 heartbeats."""
    clusters = [f"c{n:02d}" for n in range(CLUSTERS_N)]
    states = ("applied", "pending", "overdue", "drifted")
    found: list[tuple[object, object]] = []
    for n in range(DIRECTIVES_N):
        directive_id = f"BENCH-{n:03d}"
        found.append(
            (
                DIRECTIVES,
                DirectiveIssued(
                    **envelope("bench", occurred_at=now),
                    directive_id=directive_id,
                    revision=1,
                    title=f"Benchmark order {n}",
                    authority="Benchmark",
                    scope=SCOPE,
                    proposed_by="alice",
                    approved_by=["bob"],
                ),
            )
        )
        progress = {c: ClusterProgress(state=states[(n + i) % len(states)], attempts=1) for i, c in enumerate(clusters)}
        found.append(
            (
                ENFORCEMENT,
                EnforcementProgressed(
                    **envelope("bench", occurred_at=now),
                    directive_id=directive_id,
                    revision=1,
                    action="restrict",
                    expected_digest="e" * 64,
                    clusters=progress,
                    deadline=now + timedelta(seconds=120),
                ),
            )
        )
    for cluster in clusters:
        beat = AgentHeartbeat(**envelope("bench", occurred_at=now), cluster_id=cluster, models=["fable-5"], ready=True)
        found.append((ACKS, beat))
    return found


async def produce(settings: KafkaSettings, messages: list[tuple[object, object]]) -> None:
    async with producing(settings, "bench-console") as producer:
        for topic, message in messages:
            await producer.send_and_wait(topic.name, message.model_dump_json().encode(), key=key_of(topic, message))


async def first_paint_ms(page: Page, url: str) -> tuple[float, float]:
    """(first contentful paint, response end) of one load of `url`, in ms from the navigation's start."""
    await page.goto(url, wait_until="load")
    return tuple(
        await page.evaluate(
            """() => new Promise((done) => new PerformanceObserver((list) => {
                for (const entry of list.getEntries()) {
                    if (entry.name === "first-contentful-paint") {
                        done([entry.startTime, performance.getEntriesByType("navigation")[0].responseEnd]);
                    }
                }
            }).observe({type: "paint", buffered: true}))"""
        )
    )


async def ack_to_browser_s(page: Page, settings: KafkaSettings, n: int) -> float:
    """Produce one CommandApplied; the seconds until the open clusters page shows it (stamped in the browser)."""
    marker = f"BENCH-ACK-{n:04d}"
    await page.evaluate(
        """(marker) => new Promise((ready) => {
            window.__seen = null;
            const cell = document.querySelector('#clusters tr[data-cluster="c00"] [data-field=ack]');
            new MutationObserver((_, observer) => {
                if (cell.textContent.includes(marker)) { window.__seen = performance.timeOrigin + performance.now();
                  observer.disconnect(); }
            }).observe(cell, {childList: true, characterData: true, subtree: true});
            ready();
        })""",
        marker,
    )
    ack = CommandApplied(
        **envelope("bench"), cluster_id="c00", directive_id=marker, revision=1, action="restrict", digest="f" * 64
    )
    async with producing(settings, "bench-console-ack") as producer:
        produced = time.time()
        await producer.send_and_wait(ACKS.name, ack.model_dump_json().encode(), key=key_of(ACKS, ack))
    await page.wait_for_function("() => window.__seen !== null", timeout=60_000)
    return (await page.evaluate("() => window.__seen")) / 1000 - produced


async def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
        broker = LocalBroker(Path(folder) / "kafka")
        broker.start()
        stack = Stack(broker.bootstrap, Path(folder) / "stack", access=broker.access)
        try:
            settings = broker.access.settings()
            await apply_topics(settings)
            await produce(settings, board_messages(datetime.now(UTC)))
            env = stack.base_env("console")
            port = free_port()
            env.update(
                {
                    "COUNTERMAND_CONSOLE_HTTP_PORT": str(port),
                    "COUNTERMAND_CONSOLE_STATE_DIR": str(Path(folder) / "state"),
                    "COUNTERMAND_SIGNING_MODE": "off",
                }
            )
            process = stack.spawn("console", "console", env)
            await asyncio.to_thread(stack.wait_ready, 120)
            return await measure(process.url, stack.issuer.mint("bench", [Role.VIEWER]), settings)
        finally:
            stack.stop()
            broker.stop()


async def measure(base: str, token: str, settings: KafkaSettings) -> dict:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = await browser.new_context()
        await context.add_cookies([{"name": "countermand_session", "value": token, "url": base}])
        page = await context.new_page()
        await page.goto(base + "/live")
        shown = await page.locator("section.rollout").count()
        rows = await page.locator("section.rollout tbody tr").count()
        assert shown == DIRECTIVES_N and rows == DIRECTIVES_N * CLUSTERS_N, (shown, rows)
        paints = {
            path: [await first_paint_ms(page, base + path) for _ in range(PAINTS)]
            for path in ("/live", "/directives", "/clusters")
        }
        await page.goto(base + "/clusters")
        latencies = [await ack_to_browser_s(page, settings, n) for n in range(ACKS_N)]
        await browser.close()
    return {"paints": paints, "acks": latencies}


def results(measured: dict, load: str) -> dict:
    medians = {
        path: (statistics.median(p for p, _ in loads), statistics.median(r for _, r in loads))
        for path, loads in measured["paints"].items()
    }
    live, served = medians["/live"]
    others = ", ".join(f"{path} {paint:.0f} ms" for path, (paint, _) in medians.items() if path != "/live")
    acks = sorted(measured["acks"])
    p95 = acks[min(len(acks) - 1, round(0.95 * (len(acks) - 1)))]
    note = f"{DIRECTIVES_N} directives x {CLUSTERS_N} clusters; Debian chromium headless; load average {load}"
    return {
        "results": [
            {
                "metric": "first_paint_ms",
                "value": round(live, 1),
                "unit": "ms",
                "target": 300,
                "note": f"median first-contentful-paint of /live over {PAINTS} loads (its HTML fully received "
                f"at {served:.0f} ms); other pages: {others}; {note}",
            },
            {
                "metric": "ack_to_browser_s",
                "value": round(statistics.median(acks), 3),
                "unit": "s",
                "target": 1,
                "note": f"median of {ACKS_N} acks produced to serving.acks.v1 until the open /clusters page shows them "
                f"(p95 {p95:.3f} s); {note}",
            },
        ]
    }


def main() -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    measured = asyncio.run(run())
    document = results(measured, " ".join(load))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"{'metric':<20} {'value':>10} {'unit':<5} {'target':>7}  note")
    for row in document["results"]:
        print(f"{row['metric']:<20} {row['value']:>10} {row['unit']:<5} {row['target']:>7}  {row['note']}")


if __name__ == "__main__":
    main()
