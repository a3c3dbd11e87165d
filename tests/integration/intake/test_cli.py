"""`countermand directive ...` against intake served over HTTP on the real broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from devtools.ports import free_port
from devtools.scenarios import MISSION_FILE
from services.intake.cli import app
from shared.contracts.directives import DirectiveIssued, DirectiveLifted, DirectiveProposed
from shared.runtime.auth import Role
from tests.integration.intake.conftest import (
    ISSUER,
    directive_events,
    directive_records,
    intake_settings,
    running_intake,
    serving_http,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
async def url(bootstrap: str, tmp_path: Path, unique: str) -> str:
    async with running_intake(intake_settings(bootstrap, tmp_path, unique)) as service:
        async with serving_http(service) as base:
            yield base


async def cli(*args: str, who: str = "tester", roles: tuple[Role, ...] = tuple(Role)) -> Result:
    """Run the CLI in a thread (it makes blocking HTTP calls to the server on this event loop), as `who`."""
    env = {"COLUMNS": "200", "COUNTERMAND_TOKEN": ISSUER.mint(who, roles)}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def flat(result: Result) -> str:
    return " ".join(result.output.split())


def directive_yaml(
    directive_id: str, selector: str = "{kind: foreign_national, home_country: US}", models: str = "[fable-5, mythos-5]"
) -> str:
    return (
        f"directive_id: {directive_id}\ntitle: Export control\nauthority: Order 2026/17\n"
        f"scope:\n  models: {models}\n  selector: {selector}\n  enforcement_deadline_s: 120\n"
    )


PROPOSER, APPROVER = (Role.PROPOSER, Role.VIEWER), (Role.APPROVER, Role.VIEWER)


def proposal_id(result: Result) -> str:
    return next(word for word in flat(result).split() if word.startswith("p-"))


async def test_propose_approve_list_show_and_lift_through_the_cli(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.yaml"
    path.write_text(directive_yaml(unique))
    proposed = await cli("propose", str(path), "--url", url, who="alice", roles=PROPOSER)
    pending = await cli("pending", "--url", url, who="bob", roles=APPROVER)
    own = await cli("approve", proposal_id(proposed), "--url", url, who="alice", roles=(Role.APPROVER,))
    approved = await cli("approve", proposal_id(proposed), "--url", url, who="bob", roles=APPROVER)
    listed = await cli("list", "--url", url, who="bob", roles=APPROVER)
    shown = await cli("show", unique, "--url", url, who="bob", roles=APPROVER)
    lift = await cli("lift", unique, "--reason", "Order revoked", "--url", url, who="alice", roles=PROPOSER)
    lifted = await cli("approve", proposal_id(lift), "--url", url, who="carol", roles=APPROVER)
    assert [r.exit_code for r in (proposed, pending, approved, listed, shown, lift, lifted)] == [0] * 7, lifted.output
    assert f"proposed {unique} revision 1 as p-" in flat(proposed) and "by alice" in flat(proposed)
    assert proposal_id(proposed) in flat(pending) and "alice" in flat(pending)
    assert own.exit_code != 0 and "alice proposed" in flat(own) and "another person must" in flat(own)
    assert f"issued {unique} revision 1 (proposed by alice, approved by bob" in flat(approved)
    assert unique in flat(listed) and "Export control" in flat(shown)
    assert "proposed by: alice; approved by: bob" in flat(shown)
    assert f"lifted {unique} revision 1 (proposed by alice, approved by carol" in flat(lifted)
    events = await directive_events(bootstrap, unique)
    assert [type(e) for e in events] == [DirectiveProposed, DirectiveIssued, DirectiveProposed, DirectiveLifted]
    assert (events[-1].reason, events[-1].approved_by) == ("Order revoked", ["carol"])


async def test_a_rejection_needs_a_reason_and_is_recorded(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.yaml"
    path.write_text(directive_yaml(unique))
    proposed = await cli("propose", str(path), "--url", url, who="alice", roles=PROPOSER)
    bare = await cli("reject", proposal_id(proposed), "--url", url, who="bob", roles=APPROVER)
    rejected = await cli(
        "reject", proposal_id(proposed), "--reason", "too wide", "--url", url, who="bob", roles=APPROVER
    )
    assert bare.exit_code != 0 and "--reason" in flat(bare)
    assert rejected.exit_code == 0 and f"rejected {proposal_id(proposed)}" in flat(rejected)
    assert [e.type for e in await directive_events(bootstrap, unique)] == ["DirectiveProposed", "ProposalRejected"]


async def test_the_emergency_role_issues_alone_and_a_missing_token_is_explained(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.yaml"
    path.write_text(directive_yaml(unique))
    anonymous = await asyncio.to_thread(CliRunner().invoke, app, ["issue", str(path), "--url", url], env={})
    alone = await cli(
        "issue", str(path), "--emergency", "court order", "--url", url, who="erin", roles=(Role.EMERGENCY,)
    )
    assert anonymous.exit_code != 0 and "401" in flat(anonymous) and "missing credential" in flat(anonymous)
    assert alone.exit_code == 0 and f"issued {unique} revision 1 (emergency action by erin" in flat(alone)
    [event] = await directive_events(bootstrap, unique)
    assert (event.emergency, event.emergency_reason, event.proposed_by) == (True, "court order", "erin")


async def test_the_mission_file_is_issued_as_written(url: str, bootstrap: str) -> None:
    result = await cli("issue", str(MISSION_FILE), "--emergency", "test", "--url", url)
    assert result.exit_code == 0, result.output
    event = (await directive_events(bootstrap, "EXP-2026-001"))[-1]
    assert event.scope.models == ["fable-5", "mythos-5"]
    assert event.scope.selector.model_dump() == {"kind": "foreign_national", "home_country": "US"}
    assert (event.scope.unknown_attribute, event.scope.enforcement_deadline_s) == ("restrict", 120)


async def test_a_malformed_yaml_file_is_refused_and_nothing_sent(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.yaml"
    path.write_text(directive_yaml(unique, models="[fable-5, mythos-5"))
    result = await cli("issue", str(path), "--url", url)
    assert result.exit_code != 0
    assert "not valid YAML" in flat(result) and "at line 6 column" in flat(result)
    assert await directive_records(bootstrap, unique) == []


async def test_a_malformed_json_file_is_refused_and_nothing_sent(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.json"
    path.write_text(f'{{"directive_id": "{unique}",\n "title": "Export control",\n "scope": {{"models": }}}}')
    result = await cli("issue", str(path), "--url", url)
    assert result.exit_code != 0
    assert "not valid JSON" in flat(result) and "line 3" in flat(result)
    assert await directive_records(bootstrap, unique) == []


async def test_an_invalid_file_lists_every_problem_and_nothing_sent(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.json"
    body = {
        "directive_id": unique,
        "title": "t",
        "scope": {"models": [], "selector": {"kind": "foreign_national", "home_country": "XX"}},
    }
    path.write_text(json.dumps(body))
    result = await cli("issue", str(path), "--url", url)
    assert result.exit_code != 0
    assert "scope.models" in flat(result)
    assert "scope.selector.home_country: 'XX' is not an ISO 3166-1 alpha-2 country code" in flat(result)
    assert await directive_records(bootstrap, unique) == []


async def test_an_unknown_selector_kind_in_a_file_is_named(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.yaml"
    path.write_text(directive_yaml(unique, selector="{kind: religion}"))
    result = await cli("issue", str(path), "--url", url)
    assert result.exit_code != 0
    assert "scope.selector: unknown selector kind 'religion'" in flat(result)
    assert await directive_records(bootstrap, unique) == []


async def test_lifting_an_unknown_directive_exits_non_zero_naming_it(url: str, bootstrap: str, unique: str) -> None:
    result = await cli("lift", unique, "--url", url)
    assert result.exit_code != 0
    assert "404" in flat(result) and unique in flat(result)
    assert await directive_records(bootstrap, unique) == []


async def test_an_unreachable_intake_is_explained() -> None:
    result = await cli("list", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code != 0
    assert "cannot reach intake" in flat(result)


async def test_a_windows_file_with_a_bom_and_crlf_is_issued_once(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + directive_yaml(unique).replace("\n", "\r\n").encode())
    issued = await cli("issue", str(path), "--emergency", "test", "--url", url)
    again = await cli("issue", str(path), "--emergency", "test", "--url", url)
    assert (issued.exit_code, again.exit_code) == (0, 0), issued.output
    assert f"issued {unique} revision 1" in flat(issued)
    assert f"unchanged {unique} revision 1 already says this" in flat(again)
    [event] = await directive_events(bootstrap, unique)
    assert event.title == "Export control" and event.idempotency_key is not None


async def test_a_file_one_past_a_limit_is_refused_naming_it(
    url: str, bootstrap: str, tmp_path: Path, unique: str
) -> None:
    path = tmp_path / "directive.yaml"
    path.write_text(directive_yaml(unique, models="[" + ", ".join(f"m-{i}" for i in range(257)) + "]"))
    result = await cli("issue", str(path), "--url", url)
    assert result.exit_code != 0
    assert "scope.models" in flat(result) and "MAX_MODELS" in flat(result)
    assert await directive_records(bootstrap, unique) == []
