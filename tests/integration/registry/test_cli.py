"""`countermand registry` on the real broker: load, set, delete; bad input names the field and sends nothing."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from devtools import ROOT
from shared.contracts.users import UserUpserted, user_key
from tests.integration.registry.conftest import end_offsets, read_since

GOOD = ["--nationalities", "US,IE", "--residence", "US", "--account-type", "consumer"]


async def registry(bootstrap: str, *args: str) -> tuple[int, str]:
    """Run the registry CLI in its own process (bootstrap from the environment); exit code and output."""
    env = {**os.environ, "COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap, "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from devtools.registry.cli import app; app()",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode()


async def test_load_reports_users_per_second_and_produces_them(bootstrap: str) -> None:
    before = await end_offsets(bootstrap)
    code, output = await registry(bootstrap, "load", "--users", "300", "--seed", "4", "--first-id", "3000001")
    assert code == 0, output
    assert "loaded 300 users" in output and "users/s" in output
    got = [r for r in await read_since(bootstrap, before) if 3_000_001 <= int(r.key) <= 3_000_300]
    assert sorted(UserUpserted.model_validate_json(r.value).user_id for r in got) == list(range(3_000_001, 3_000_301))


async def test_set_upserts_one_validated_record_and_delete_sends_a_tombstone(bootstrap: str) -> None:
    before = await end_offsets(bootstrap)
    code, output = await registry(
        bootstrap,
        "set",
        "4000001",
        *GOOD,
        "--organisation",
        "org-00042",
        "--entitlements",
        "fable-5,mythos-5",
        "--email",
        "ada@example.com",
    )
    assert code == 0, output
    code, output = await registry(bootstrap, "delete", "4000001", "--bootstrap", bootstrap)
    assert code == 0, output
    got = [r for r in await read_since(bootstrap, before) if r.key == user_key(4_000_001)]
    assert len(got) == 2
    user = UserUpserted.model_validate_json(got[0].value)
    assert (user.nationalities, user.residence, user.account_type) == (["US", "IE"], "US", "consumer")
    assert (user.organisation, user.entitlements, user.email) == (
        "org-00042",
        ["fable-5", "mythos-5"],
        "ada@example.com",
    )
    assert user.producer == "registry"
    assert got[1].value is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (
            ["set", "4000002", "--nationalities", "US,XX", "--residence", "US", "--account-type", "consumer"],
            "nationalities.1",
        ),
        (["set", "4000002", "--nationalities", "US", "--residence", "XX", "--account-type", "consumer"], "residence"),
        (["set", "-5", *GOOD], "user_id"),
        (["set", "4000002", "--nationalities", "US", "--residence", "US", "--account-type", "robot"], "account_type"),
        (["delete", "-5"], "user_id"),
        (["load", "--users", "-3"], "users"),
    ],
)
async def test_bad_input_exits_non_zero_naming_the_field_and_sends_nothing(bootstrap: str, args, field) -> None:
    before = await end_offsets(bootstrap)
    code, output = await registry(bootstrap, *args)
    assert code != 0
    assert f"error: {field}:" in output and "nothing was sent" in output
    assert await end_offsets(bootstrap) == before


async def test_unreachable_broker_is_an_error_not_a_hang(bootstrap: str) -> None:
    code, output = await registry(bootstrap, "delete", "7", "--bootstrap", "127.0.0.1:1")
    assert code == 1 and "error: Kafka at 127.0.0.1:1" in output
