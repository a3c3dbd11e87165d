"""Two intake processes started under the same instance name: the newer fences the older's transactional producer;
the older refuses what it can no longer publish, stops and exits with the fatal-producer code (on the real broker)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.broker import ROOT, KafkaAccess
from devtools.ports import free_port
from devtools.waiting import eventually_blocking
from shared.runtime.producer_watch import EXIT_CODE
from tests.integration.intake.conftest import _JWKS, ALONE, ISSUER, as_tester, directive_events

pytestmark = pytest.mark.kafka


def directive(directive_id: str) -> dict[str, object]:
    scope = {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}}
    return {"directive_id": directive_id, "title": "Fencing", "scope": scope}


@contextlib.contextmanager
def intake_process(env: dict[str, str], port: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m services.intake` on this port, ready; terminated on exit if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "services.intake"],
        cwd=ROOT,
        env=env | {"COUNTERMAND_INTAKE_HTTP_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"intake exited with {process.returncode}: {process.stdout.read()[-3000:]}")  # type: ignore[union-attr]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        return False

    try:
        eventually_blocking(ready, "intake to be ready", timeout=90)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=30)


def test_an_intake_fenced_by_a_newer_one_of_its_name_publishes_nothing_and_exits_with_the_fatal_code(
    bootstrap: str, kafka_access: KafkaAccess, tmp_path: Path, unique: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERMAND_")}
    env |= kafka_access.env() | {
        "COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap,
        "COUNTERMAND_LOG_FORMAT": "json",
        "COUNTERMAND_SIGNING_MODE": "off",
        "COUNTERMAND_AUTH_JWKS_FILE": str(_JWKS),
        "COUNTERMAND_AUTH_ISSUER": ISSUER.issuer,
        "COUNTERMAND_INTAKE_INSTANCE": f"fenced-{unique}",
        "COUNTERMAND_INTAKE_STATE_DIR": str(tmp_path),
    }
    with intake_process(env, free_port()) as (older, older_url), intake_process(env, free_port()) as (_, newer_url):
        with contextlib.suppress(httpx.HTTPError):  # the older may answer 503 or drop the connection as it stops
            refused = httpx.post(
                f"{older_url}/directives",
                json=directive(f"{unique}-old"),
                params=ALONE,
                headers=as_tester(),
                timeout=60,
            )
            assert refused.status_code == 503, refused.text
        out, _ = older.communicate(timeout=60)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert older.returncode == EXIT_CODE, out[-3000:]
        fatal = next(line for line in lines if line.get("event", "").startswith("Kafka producer failed for good"))
        assert (fatal["producer"], fatal["error"]) == ("intake writer", "ProducerFenced")

        issued = httpx.post(
            f"{newer_url}/directives", json=directive(f"{unique}-new"), params=ALONE, headers=as_tester(), timeout=60
        )
        assert issued.status_code == 202 and issued.json()["revision"] == 1, issued.text
    assert asyncio.run(directive_events(bootstrap, f"{unique}-old")) == []  # the fenced instance published nothing
