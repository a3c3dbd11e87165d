"""Bad acknowledgements on the real broker: a wrong digest, a failed command, an ack for an unknown revision."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyroaring import BitMap
from typer.testing import CliRunner

from devtools.waiting import eventually
from services.enforcement.cli import app
from shared.contracts.catalogue import ACKS, COMMANDS, ENFORCEMENT, IMPACT
from shared.contracts.serving import AgentHeartbeat, CommandApplied, CommandFailed
from tests.integration.enforcement.conftest import WRONG, TopicReader, impact, publish, running


def beat(cluster: str, *models: str) -> AgentHeartbeat:
    return AgentHeartbeat(producer="agent", cluster_id=cluster, models=list(models), ready=True)


def ack(cluster: str, directive: str, digest: str, revision: int = 1) -> CommandApplied:
    return CommandApplied(
        producer="agent",
        cluster_id=cluster,
        directive_id=directive,
        revision=revision,
        action="restrict",
        digest=digest,
    )


async def status_rows(bootstrap: str, directive: str) -> dict[str, str]:
    """`countermand status ID`, one output line per cluster."""
    result = await asyncio.to_thread(
        CliRunner().invoke, app, [directive, "--bootstrap", bootstrap], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    return {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}


async def started(
    bootstrap: str, service, status: TopicReader, sent: TopicReader, cluster: str, directive: str, model: str
):
    """A one-cluster restriction sent out and pending; returns its assessment."""
    await publish(bootstrap, ACKS, beat(cluster, model))
    await eventually(lambda: cluster in service.core.clusters, what="heartbeat")
    assessed, *chunks = impact(directive, {model: BitMap(range(0, 90, 3))})
    await publish(bootstrap, IMPACT, assessed, *chunks)
    await eventually(lambda: sent.where(type="RestrictCommand", directive_id=directive), what="restrict sent")
    await eventually(lambda: status.where(type="EnforcementProgressed", directive_id=directive), what="progress")
    return assessed


def progress_of(status: TopicReader, directive: str, cluster: str) -> list:
    return [
        p.clusters[cluster]
        for p in status.where(type="EnforcementProgressed", directive_id=directive)
        if cluster in p.clusters
    ]


async def test_an_ack_with_a_wrong_digest_is_rejected_as_a_digest_mismatch_and_not_applied(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, directive, model = f"c-{unique}", f"D-{unique}", f"fable-{unique}"
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        TopicReader(bootstrap, COMMANDS) as sent,
        running(bootstrap, tmp_path) as service,
    ):
        assessed = await started(bootstrap, service, status, sent, cluster, directive, model)
        await publish(bootstrap, ACKS, ack(cluster, directive, WRONG))

        [mismatch] = await eventually(
            lambda: [p for p in progress_of(status, directive, cluster) if p.reason == "digest mismatch"],
            what="digest mismatch",
        )
        assert mismatch.state == "pending" and mismatch.digest == WRONG and mismatch.acked_at is None
        track = service.core.rollouts[(directive, 1, "restrict")].clusters[cluster]
        assert not track.applied and track.reason == "digest mismatch"
        assert status.where(type="DirectiveEnforced", directive_id=directive) == []
        row = (await status_rows(bootstrap, directive))[cluster]
        assert "digest mismatch" in row and "applied" not in row

        await publish(bootstrap, ACKS, ack(cluster, directive, assessed.digest))  # the right one still counts
        await eventually(lambda: status.where(type="DirectiveEnforced", directive_id=directive), what="enforced")
        assert track.applied and track.reason is None


async def test_a_failed_command_shows_failed_with_the_agent_s_reason(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, directive, model = f"c-{unique}", f"D-{unique}", f"fable-{unique}"
    reason = "snapshot write failed: disk full"
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        TopicReader(bootstrap, COMMANDS) as sent,
        running(bootstrap, tmp_path) as service,
    ):
        await started(bootstrap, service, status, sent, cluster, directive, model)
        await publish(
            bootstrap,
            ACKS,
            CommandFailed(producer="agent", cluster_id=cluster, directive_id=directive, revision=1, reason=reason),
        )

        [failed] = await eventually(
            lambda: [p for p in progress_of(status, directive, cluster) if p.state == "failed"], what="failed progress"
        )
        assert failed.reason == reason and failed.acked_at is None
        assert service.core.rollouts[(directive, 1, "restrict")].clusters[cluster].state == "failed"
        assert status.where(type="DirectiveEnforced", directive_id=directive) == []
        row = (await status_rows(bootstrap, directive))[cluster]
        assert "failed" in row and reason in row


async def test_acks_for_an_unknown_revision_or_directive_are_ignored_and_change_nothing(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cluster, directive, model = f"c-{unique}", f"D-{unique}", f"fable-{unique}"
    async with (
        TopicReader(bootstrap, ENFORCEMENT) as status,
        TopicReader(bootstrap, COMMANDS) as sent,
        running(bootstrap, tmp_path) as service,
    ):
        assessed = await started(bootstrap, service, status, sent, cluster, directive, model)
        rollout = service.core.rollouts[(directive, 1, "restrict")]
        before = rollout.model_dump()
        events_before = len(status.where(directive_id=directive))

        # The right digest, but for a revision and a directive that were never assessed; then a heartbeat of
        # the same cluster (same partition, so processed after them) that changes only what it serves.
        marker = beat(cluster, model, f"other-{unique}")
        await publish(
            bootstrap,
            ACKS,
            ack(cluster, directive, assessed.digest, revision=7),
            ack(cluster, f"NOPE-{unique}", assessed.digest),
            marker,
        )
        await eventually(lambda: len(service.core.clusters[cluster].models) == 2, what="marker heartbeat")

        assert rollout.model_dump() == before
        assert rollout.clusters[cluster].state == "pending" and rollout.clusters[cluster].attempts == 1
        await asyncio.sleep(0.5)  # anything those acks caused would have been published by now
        assert len(status.where(directive_id=directive)) == events_before
        assert status.where(directive_id=f"NOPE-{unique}") == []
        assert (f"NOPE-{unique}", 1, "restrict") not in service.core.rollouts
