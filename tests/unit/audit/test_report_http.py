"""`GET /v1/reports/{directive_id}` for the auditor role: the directive's report from the ledger, the same JSON and
HTML as the report built from every record on the topics, as a file; a clear 404 or 422 for a bad directive id."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from services.audit.evidence import Evidence
from services.audit.html import render_html
from services.audit.report import build_report
from services.audit.report_model import DirectiveReport
from shared.runtime.auth import LocalIssuer, Role
from tests.unit.audit.conftest import get as get_as
from tests.unit.audit.evidence_story import at
from tests.unit.audit.evidence_story import ledger_records as records

NOW = at(300)


async def get(issuer: LocalIssuer, ledger_path: Path, path: str, *roles: Role) -> httpx.Response:
    return await get_as(issuer, ledger_path, path, roles, NOW)


def from_every_record(directive_id: str, served: DirectiveReport) -> DirectiveReport:
    """The report as `countermand audit report` builds it from everything on the topics (no window, no digests
    reproduced), with the checkpoint verification the API attached."""
    evidence = Evidence()
    for r in records():
        evidence.add(r.topic, r.partition, r.offset, r.key, r.value, r.kafka_timestamp or 0, r.headers)
    return build_report(evidence, directive_id, NOW, checkpoint=served.checkpoint)


async def test_the_json_report_is_the_directives_report_as_a_file(issuer: LocalIssuer, ledger_path: Path) -> None:
    reply = await get(issuer, ledger_path, "/v1/reports/EXP-9?format=json", Role.AUDITOR)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-disposition"] == 'attachment; filename="countermand-report-EXP-9.json"'
    served = DirectiveReport.model_validate(reply.json())
    assert served.directive_id == "EXP-9" and served.revisions and served.clusters
    assert served == from_every_record("EXP-9", served)
    assert served.checkpoint is not None and served.checkpoint.chain_intact
    assert served.checkpoint.entries == len(records())


async def test_the_html_report_is_the_one_the_cli_renders(issuer: LocalIssuer, ledger_path: Path) -> None:
    reply = await get(issuer, ledger_path, "/v1/reports/EXP-10?format=html", Role.AUDITOR)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert reply.headers["content-disposition"] == 'attachment; filename="countermand-report-EXP-10.html"'
    served = DirectiveReport.model_validate(
        json.loads((await get(issuer, ledger_path, "/v1/reports/EXP-10", Role.AUDITOR)).text)
    )
    assert reply.text == render_html(from_every_record("EXP-10", served))


@pytest.mark.parametrize(("roles", "status"), [((Role.VIEWER, Role.APPROVER), 403), ((Role.AUDITOR,), 200)])
async def test_the_report_needs_the_auditor_role(
    issuer: LocalIssuer, ledger_path: Path, roles: tuple[Role, ...], status: int
) -> None:
    assert (await get(issuer, ledger_path, "/v1/reports/EXP-9", *roles)).status_code == status


async def test_an_unknown_directive_or_a_bad_id_or_format_is_named(issuer: LocalIssuer, ledger_path: Path) -> None:
    unknown = await get(issuer, ledger_path, "/v1/reports/EXP-404", Role.AUDITOR)
    assert unknown.status_code == 404 and unknown.json()["problems"][0]["field"] == "directive_id"
    bad_format = await get(issuer, ledger_path, "/v1/reports/EXP-9?format=pdf", Role.AUDITOR)
    assert bad_format.status_code == 422 and "format" in bad_format.text
    bad_id = await get(issuer, ledger_path, "/v1/reports/exp%20nine", Role.AUDITOR)
    assert bad_id.status_code == 422 and "directive_id" in bad_id.text
