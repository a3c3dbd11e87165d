"""The audit's answers come from the topics alone: with every service's state deleted (impact's snapshots,
enforcement's and the agents' stores, the notifier's, the audit's own ledger folder), `report`, `explain` and
`at` give the same answers as before."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.broker import LocalBroker
from devtools.observe import TopicReader
from devtools.registry import population as registry_population
from devtools.registry.loader import load as load_registry
from devtools.stack import Stack
from shared.contracts.catalogue import ENFORCEMENT, NOTIFICATIONS
from shared.contracts.enforcement import DirectiveEnforced
from shared.contracts.notifications import NotificationDelivered
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

pytestmark = pytest.mark.kafka

USERS_N = 400
DIRECTIVE = "STATELESS-1"
TIMEOUT = 240


def body() -> dict:
    return {
        "directive_id": DIRECTIVE,
        "title": "answers without service state",
        "scope": {
            "models": ["fable-5"],
            "selector": {"kind": "nationality", "any_of": ["CN", "RU"]},
            "enforcement_deadline_s": 120,
        },
    }


def audit(stack: Stack, *args: str) -> str:
    env = {
        **stack.base_env(),
        "COUNTERMAND_AUDIT_RECORD_KEYS": json.dumps(stack.record_key_sets()),
        "COUNTERMAND_AUDIT_STATE_DIR": str(stack.state_dir("audit")),
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "audit", *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def answers(stack: Stack, folder: Path, users: list[int], moment: str) -> dict:
    """Report (JSON, generation time left out), explain for each user and `at`, all as JSON."""
    report_file = folder / "report.json"
    audit(stack, "report", DIRECTIVE, "--json", str(report_file))
    report = json.loads(report_file.read_text())
    report.pop("generated_at")
    explained = {u: json.loads(audit(stack, "explain", str(u), "fable-5", "--at", moment, "--json")) for u in users}
    return {"report": report, "explain": explained, "at": json.loads(audit(stack, "at", moment, "--json"))}


@pytest.fixture(scope="module")
def stateless_kafka(kafka_dir: Path, kafka_secrets: Path) -> LocalBroker:
    with LocalBroker(kafka_dir.with_name("stateless-kafka"), secrets=kafka_secrets) as broker:
        yield broker


async def test_report_and_explain_are_the_same_with_every_service_state_deleted(
    stateless_kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(bootstrap=stateless_kafka.bootstrap)
    await apply_topics(settings)
    stack = Stack(stateless_kafka.bootstrap, tmp_path_factory.mktemp("stateless"), access=stateless_kafka.access)
    await load_registry(stateless_kafka.bootstrap, registry_population.generate(USERS_N, seed=5))
    await asyncio.to_thread(stack.start)
    try:
        await asyncio.to_thread(stack.issue, body())
        async with TopicReader(settings, ENFORCEMENT) as status:
            enforced = await status.wait_for(
                lambda m: isinstance(m, DirectiveEnforced) and m.directive_id == DIRECTIVE, TIMEOUT, "enforcement"
            )
        async with TopicReader(settings, NOTIFICATIONS) as notices:
            delivered = await notices.wait_for(
                lambda m: isinstance(m, NotificationDelivered) and m.directive_id == DIRECTIVE, TIMEOUT, "a notice"
            )
        await asyncio.sleep(5)  # let the notices of this revision settle: the answers are compared whole
    finally:
        await asyncio.to_thread(stack.stop)

    moment = enforced.occurred_at.isoformat()
    users = [delivered.recipient, 1, 2]  # one covered user, and two whatever the selector says
    state = stack.run_dir / "state"
    assert (stack.ledger).exists() and any(state.iterdir())
    before = await asyncio.to_thread(answers, stack, tmp_path_factory.mktemp("before"), users, moment)
    assert before["explain"][delivered.recipient]["directives"][0]["covered"] is True
    assert before["report"]["assessments"][0]["affected_users"] > 0 and before["at"]["directives_in_force"] == 1

    shutil.rmtree(state)  # snapshots, stores, the audit's ledger: every service's state
    assert not state.exists() and not stack.ledger.exists()
    after = await asyncio.to_thread(answers, stack, tmp_path_factory.mktemp("after"), users, moment)
    assert after == before
