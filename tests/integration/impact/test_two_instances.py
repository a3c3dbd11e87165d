"""Two impact instances on one broker: one is active, the other stands by with its own (fresh) state dir. Killed
with SIGKILL, the active is replaced by the standby, which rebuilds its state from Kafka alone and publishes what
the dead one had not; a rebalance in the middle of a chunked assessment publishes it once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import structlog
from aiokafka import AIOKafkaProducer
from pyroaring import BitMap

from devtools import ROOT
from devtools.waiting import eventually
from services.impact.app import build
from shared.contracts.bitmaps import decode_bitmap, scope_digest, set_digest
from shared.contracts.catalogue import IMPACT, USERS
from shared.contracts.directives import DirectiveLifted
from tests.integration.impact.conftest import (
    FOREIGN_TO_US,
    TIMEOUT_S,
    _bases,
    end_offsets,
    issued,
    oracle,
    random_users,
    read_until,
    registry_at,
    send_directive,
    send_users,
    settings_for,
)
from tests.unit.impact.population_builder import user

pytestmark = pytest.mark.kafka
SESSION_TIMEOUT_MS = 6_000  # the broker's group.min.session.timeout.ms: the shortest failover the group allows


def spawn(bootstrap: str, state: Path, instance: str) -> tuple[subprocess.Popen, Path]:
    """`python -m services.impact` with its own state dir and instance name; its JSON log beside the state."""
    state.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap,
        "COUNTERMAND_IMPACT_STATE_DIR": str(state),
        "COUNTERMAND_IMPACT_HTTP_PORT": "0",
        "COUNTERMAND_IMPACT_SNAPSHOT_INTERVAL_S": "0",
        "COUNTERMAND_IMPACT_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "COUNTERMAND_IMPACT_INSTANCE": instance,
        "COUNTERMAND_LOG_FORMAT": "json",
    }
    log = state / "impact.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.impact"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, log


def log_lines(log: Path, event: str) -> list[dict]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


async def ready(process: subprocess.Popen, log: Path) -> dict:
    """The "service ready" line of a started instance (with its role)."""

    def line() -> dict | None:
        assert process.poll() is None, f"impact exited with {process.returncode}: see {log}"
        return next(iter(log_lines(log, "service ready")), None)

    return await eventually(line, f"impact ready ({log})", TIMEOUT_S * 2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mine(events: list[dict], directive: str) -> list[dict]:
    return [e for e in events if e.get("directive_id") == directive]


def assessed(events: list[dict], directive: str, action: str) -> bool:
    """True once a complete assessment of the directive and action is on the topic."""
    heads = [e for e in mine(events, directive) if e["type"] == "ImpactAssessed" and e["action"] == action]
    chunks = {e["chunk"] for e in mine(events, directive) if e["type"] == "AffectedSetChunk" and e["action"] == action}
    return bool(heads) and len(chunks) == heads[0]["chunks"] + heads[0]["diff_chunks"]


async def impact_topic(bootstrap: str, done) -> list[dict]:
    """Every committed record of the impact topic, read until done(records)."""
    return await read_until(bootstrap, IMPACT.name, IMPACT.partitions, done)


def exactly_once(events: list[dict], directive: str, action: str) -> tuple[dict, dict[str, BitMap]]:
    """The one assessment of a directive and action: a second head or a chunk published twice fails the test."""
    published = [e for e in mine(events, directive) if e.get("action") == action and e["type"] != "AffectedSetDelta"]
    twice = [event_id for event_id, n in Counter(e["event_id"] for e in published).items() if n > 1]
    assert not twice, f"published more than once: {twice}"
    (head,) = [e for e in published if e["type"] == "ImpactAssessed"]
    sets = {m: BitMap() for m in head["affected_by_model"]}
    for chunk in (e for e in published if e["type"] == "AffectedSetChunk" and e["part"] == "whole"):
        sets[chunk["model"]] |= decode_bitmap(chunk["users"])
    return head, sets


def current(events: list[dict], directive: str, action: str = "restrict") -> dict[str, BitMap]:
    """A directive's sets as published: its whole sets with every delta applied in order."""
    sets = {m: BitMap(s) for m, s in exactly_once(events, directive, action)[1].items()}
    for delta in sorted(
        (e for e in mine(events, directive) if e["type"] == "AffectedSetDelta"), key=lambda d: d["seq"]
    ):
        sets[delta["model"]] = (sets[delta["model"]] - decode_bitmap(delta["removed"])) | decode_bitmap(delta["added"])
    return sets


def covers_now(events: list[dict], directive: str, user_id: int) -> bool:
    return assessed(events, directive, "restrict") and all(user_id in s for s in current(events, directive).values())


async def registry_now(bootstrap: str) -> dict:
    return await registry_at(bootstrap, {str(p): o for (_, p), o in (await end_offsets(bootstrap, (USERS,))).items()})


async def test_the_standby_takes_over_from_a_killed_active_and_publishes_what_it_had_not(
    bootstrap: str, producer: AIOKafkaProducer, unique: str, tmp_path: Path
) -> None:
    base = next(_bases) * 100_000
    await send_users(producer, random_users(base, 3_000, seed=21))
    models = [f"{name}-{unique}" for name in ("fable", "mythos", "lyric", "opus")]  # one chunk each at least
    chinese = {"kind": "nationality", "any_of": ["CN"]}
    first, second = f"{unique}-killed-mid-way", f"{unique}-after-the-kill"
    active, active_log = spawn(bootstrap, tmp_path / "a", f"a-{unique}")
    standby = None
    try:
        assert (await ready(active, active_log))["role"] == "active"
        standby, standby_log = spawn(bootstrap, tmp_path / "b", f"b-{unique}")  # a fresh state dir
        assert (await ready(standby, standby_log))["role"] == "standby"

        await send_directive(producer, issued(first, 1, FOREIGN_TO_US, models))
        active.send_signal(signal.SIGKILL)  # while it assesses (or just before or after: every case must converge)
        active.wait(30)
        await send_directive(producer, issued(second, 1, chinese, models[:2]))
        signup = base + 5_000  # a registry change after the kill: covered by both
        await send_users(producer, [user(signup, ["CN"], "CN", "consumer", None, tuple(models))])

        events = await impact_topic(
            bootstrap, lambda seen: covers_now(seen, first, signup) and covers_now(seen, second, signup)
        )
        assert log_lines(standby_log, "impact instance active"), "the standby never became active"
        people_now = await registry_now(bootstrap)
        for directive, selector in ((first, FOREIGN_TO_US), (second, chinese)):
            head, sets = exactly_once(events, directive, "restrict")
            expected = oracle(await registry_at(bootstrap, head["registry_offsets"]), selector)
            assert sets == {m: expected for m in head["affected_by_model"]}
            assert head["digest"] == scope_digest({m: set_digest(expected) for m in head["affected_by_model"]})
            assert current(events, directive) == {m: oracle(people_now, selector) for m in head["affected_by_model"]}
            deltas = [e for e in mine(events, directive) if e["type"] == "AffectedSetDelta"]
            assert sorted(d["seq"] for d in deltas) == list(range(1, len(deltas) + 1))  # none twice, none skipped

        # The standby rebuilt the first directive from the impact topic: its lift restores exactly that set, net
        # of the second directive still in force.
        first_now, second_now = current(events, first), current(events, second)
        await send_directive(producer, DirectiveLifted(producer="test", directive_id=first, revision=1))
        await send_directive(producer, DirectiveLifted(producer="test", directive_id=second, revision=1))
        events = await impact_topic(
            bootstrap, lambda seen: assessed(seen, first, "lift") and assessed(seen, second, "lift")
        )
        assert exactly_once(events, first, "lift")[1] == {m: first_now[m] - second_now.get(m, BitMap()) for m in models}
        assert exactly_once(events, second, "lift")[1] == second_now
    finally:
        if active.poll() is None:
            active.kill()
        if standby is not None:
            stop(standby)


class GatedPublisher:
    """The writer's publisher, holding the assessment's transaction open after its head and first chunk until the
    test opens the gate (a hand-written fake around the real publisher)."""

    def __init__(self, publisher, directive: str) -> None:
        self._publisher, self._directive = publisher, directive
        self.held = asyncio.Event()
        self.gate = asyncio.Event()
        self._sent = 0

    async def publish(self, message, *args, **kwargs):
        if self._directive in str(kwargs.get("key")):
            self._sent += 1
            if self._sent == 3:
                self.held.set()
                await self.gate.wait()
        return await self._publisher.publish(message, *args, **kwargs)


async def test_a_rebalance_in_the_middle_of_a_chunked_assessment_publishes_it_once(
    bootstrap: str, producer: AIOKafkaProducer, unique: str, tmp_path: Path
) -> None:
    base = next(_bases) * 100_000
    await send_users(producer, random_users(base, 1_000, seed=22))
    models = [f"{name}-{unique}" for name in ("fable", "mythos", "lyric", "opus")]
    directive = f"{unique}-rebalanced"
    active = build(settings_for(bootstrap, tmp_path / "a", instance=f"a-{unique}", session_timeout_ms=6_000))
    standby = build(settings_for(bootstrap, tmp_path / "b", instance=f"b-{unique}", session_timeout_ms=6_000))
    with structlog.testing.capture_logs() as logs:
        await active.start()
        try:
            assert active.role == "active"
            gated = GatedPublisher(active.writer.publisher, directive)
            active.writer.publisher = gated
            await send_directive(producer, issued(directive, 1, FOREIGN_TO_US, models))
            await asyncio.wait_for(gated.held.wait(), TIMEOUT_S)  # head and first chunk sent, transaction open
            await standby.start()  # joins the group: a rebalance while the assessment is half published
            try:
                assert standby.role == "standby" and active.role == "active"
                gated.gate.set()
                events = await impact_topic(bootstrap, lambda seen: assessed(seen, directive, "restrict"))
                head, sets = exactly_once(events, directive, "restrict")
                expected = oracle(await registry_at(bootstrap, head["registry_offsets"]), FOREIGN_TO_US)
                assert sets == {m: expected for m in models} and head["chunks"] == len(models)
                # The standby answers dry runs against what the active one published.
                await eventually(lambda: directive in standby.directives.active, "the standby folded it", TIMEOUT_S)
                assert standby.directives.active[directive].sets == sets
                await send_directive(producer, DirectiveLifted(producer="test", directive_id=directive, revision=1))
                events = await impact_topic(bootstrap, lambda seen: assessed(seen, directive, "lift"))
                exactly_once(events, directive, "restrict")  # the redelivered directive was not assessed again
                await eventually(lambda: directive not in standby.directives.active, "the standby folded the lift")
                assert standby.role == "standby"
            finally:
                await standby.stop()
        finally:
            gated.gate.set()
            await active.stop()
    reasons = [e for e in logs if e["event"].startswith("consumer group rebalance")]
    assert reasons and all(e["log_level"] == "info" for e in reasons), "the rebalance was not logged"
