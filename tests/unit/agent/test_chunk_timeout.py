"""A revision missing a chunk is never applied partially: after the timeout it fails once, naming the chunks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyroaring import BitMap

from services.agent.access import AccessIndex
from services.agent.command_effects import Failed, expire_staging, on_restrict
from services.agent.restriction_store import RestrictionStore
from services.agent.restrictions import Restrictions
from tests.unit.agent.builders import recording_agent, restrict

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=60)


def _revision_2_missing_chunks_1_and_3(state: Restrictions) -> list:
    chunks = [restrict("D1", 2, "fable-5", [10 + i], chunk=i, chunks=4) for i in (0, 2)]
    for command in chunks:
        on_restrict(state, command, NOW)
    return chunks


def test_an_incomplete_revision_is_not_applied_and_fails_after_the_timeout_naming_the_missing_chunks() -> None:
    state = Restrictions()
    on_restrict(state, restrict("D1", 1, "fable-5", [1]), NOW)
    held, digest = state.held["D1"], state.digest("D1")
    first, _ = _revision_2_missing_chunks_1_and_3(state)
    assert expire_staging(state, NOW + TIMEOUT - timedelta(seconds=1), TIMEOUT) == {}
    assert AccessIndex.of(state.held).check(10, "fable-5", NOW).allowed  # nothing of revision 2 applied
    outcome = expire_staging(state, NOW + TIMEOUT, TIMEOUT)["D1"]
    [failed] = outcome.acks
    assert isinstance(failed, Failed) and failed.revision == 2 and failed.cause == first.event_id
    assert "chunks 1, 3 of 4 missing" in failed.reason
    assert outcome.touched and not outcome.held_changed
    assert state.staging == {} and state.held["D1"] is held and state.digest("D1") == digest


def test_the_failure_is_reported_once() -> None:
    state = Restrictions()
    _revision_2_missing_chunks_1_and_3(state)
    assert len(expire_staging(state, NOW + TIMEOUT, TIMEOUT)["D1"].acks) == 1
    assert expire_staging(state, NOW + 2 * TIMEOUT, TIMEOUT) == {}


def test_a_revision_completed_in_time_is_applied_and_never_expires() -> None:
    state = Restrictions()
    for i in range(3):
        on_restrict(state, restrict("D1", 1, "fable-5", [i], chunk=i, chunks=3), NOW + i * TIMEOUT / 3)
    assert state.held["D1"].sets == {"fable-5": BitMap([0, 1, 2])}
    assert expire_staging(state, NOW + 10 * TIMEOUT, TIMEOUT) == {}


def test_staging_recovered_from_the_snapshot_waits_the_full_timeout_again(tmp_path: Path) -> None:
    store = RestrictionStore(tmp_path / "s.sqlite3")
    state = Restrictions()
    store.record(state, "D1", on_restrict(state, restrict("D1", 1, "fable-5", [1], chunk=0, chunks=2), NOW), 0, 0)
    store.close()
    loaded, _ = RestrictionStore(tmp_path / "s.sqlite3").load()
    restarted = NOW + 5 * TIMEOUT
    assert expire_staging(loaded, restarted, TIMEOUT) == {}
    assert "chunks 1 of 2" in expire_staging(loaded, restarted + TIMEOUT, TIMEOUT)["D1"].acks[0].reason


async def test_the_agent_reports_the_timeout_once_and_its_snapshot_drops_the_staging(tmp_path: Path) -> None:
    clock = [NOW]
    agent = recording_agent(tmp_path, clock=lambda: clock[0])
    await agent.handle(restrict("D1", 1, "fable-5", [1]), partition=0, offset=0)
    chunk = restrict("D1", 2, "fable-5", [2], chunk=1, chunks=2)
    await agent.handle(chunk, partition=0, offset=1)
    await agent.handling.expire_staging(TIMEOUT)
    clock[0] = NOW + TIMEOUT
    await agent.handling.expire_staging(TIMEOUT)
    await agent.handling.expire_staging(TIMEOUT)
    failures = [ack for ack, _ in agent.reports.publisher.sent if ack.type == "CommandFailed"]
    assert len(failures) == 1 and "chunks 0 of 2 missing" in failures[0].reason
    assert failures[0].causation_id == chunk.event_id and failures[0].revision == 2
    durable, offsets = agent.holding.store.load()
    assert durable.staging == {} and durable.held["D1"].revision == 1 and offsets == {0: 2}
