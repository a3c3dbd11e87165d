"""Dry runs on the real broker: the answer equals the oracle, nothing is published, the CLI shows it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pyroaring import BitMap
from typer.testing import CliRunner

from services.impact.app import ImpactService
from services.impact.cli import app as impact_cli
from tests.integration.impact.conftest import (
    FOREIGN_TO_US,
    _bases,
    assessment_of,
    end_offsets,
    issued,
    oracle,
    registry_at,
    send_directive,
    send_users,
)
from tests.unit.impact.population_builder import user

pytestmark = pytest.mark.kafka


async def serving(service: ImpactService):
    """The service's HTTP API on a free port; returns (server, task, base url)."""
    server = service.http_server()
    server.config.port = 0
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def test_preview_answers_what_the_directive_would_do_and_publishes_nothing(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str, tmp_path: Path, to_lift: list
) -> None:
    base = next(_bases) * 100_000
    org = f"org-{unique}"
    await send_users(
        producer,
        [
            user(base + 1, ["FR"], "DE", organisation=org),
            user(base + 2, ["US"], "US", organisation=org),
            user(base + 3, None, None, "employee", organisation=org),
        ],
    )
    selector = {"kind": "all_of", "of": [{"kind": "organisation", "any_of": [org]}, FOREIGN_TO_US]}
    other = f"{unique}-other"
    to_lift.append((other, 1))
    # A model of this test's own: other tests' directives on the shared topics stay active and would
    # (rightly) keep these users denied, so a lift preview on a common model would restore nobody.
    model = f"fable-{unique}"
    await send_directive(producer, issued(other, 1, {"kind": "organisation", "any_of": [org]}, [model]))
    head, _ = await assessment_of(bootstrap, other, "restrict")  # the view now holds the three users
    server, task, url = await serving(service)
    try:
        before = await end_offsets(bootstrap)
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/readyz")).status_code == 200
            body = {
                "directive_id": f"{unique}-dry",
                "title": "Export control",
                "scope": {"models": ["fable-5", "mythos-5"], "selector": selector},
            }
            answer = (await client.post("/directives/preview", json=body)).json()
            lift = (await client.post(f"/directives/{other}/lift/preview")).json()

        expected = oracle(await registry_at(bootstrap, head["registry_offsets"]), selector)
        assert expected == BitMap([base + 1, base + 3])
        assert answer["affected_by_model"] == {"fable-5": 2, "mythos-5": 2} and answer["sample"] == list(expected)
        assert answer["by_country"] == {"DE": 1, "??": 1} and answer["unknown_only"] == 1
        assert answer["by_account_type"] == {"consumer": 1, "employee": 1}
        assert lift["affected_by_model"] == {model: 3}

        file = tmp_path / "directive.json"
        file.write_text(json.dumps(body))
        shown = await asyncio.to_thread(CliRunner().invoke, impact_cli, ["preview", str(file), "--impact-url", url])
        assert shown.exit_code == 0, shown.output
        assert f"{base + 1}, {base + 3}" in shown.output and "distinct users" in shown.output

        assert await end_offsets(bootstrap) == before  # no topic received anything
        assert other in service.directives.active and f"{unique}-dry" not in service.directives.assessed
    finally:
        server.should_exit = True
        await task
