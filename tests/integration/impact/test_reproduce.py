"""reproduce(): the published digest recomputed from the registry as of the recorded offsets, and its CLI."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from pyroaring import BitMap
from typer.testing import CliRunner

from services.impact.affected import AffectedSet
from services.impact.app import ImpactService
from services.impact.cli import app as impact_cli
from services.impact.messages import Cause, assessment
from services.impact.reproduce import reproduce
from shared.contracts.catalogue import IMPACT, USERS
from shared.contracts.directives import DirectiveScope
from shared.contracts.envelope import utc_now
from shared.contracts.users import user_key
from shared.runtime.settings import KafkaSettings
from tests.integration.impact.conftest import (
    FOREIGN_TO_US,
    _bases,
    assessment_of,
    issued,
    lifted,
    passed_marker,
    random_users,
    send_directive,
    send_users,
)
from tests.unit.impact.population_builder import user

pytestmark = pytest.mark.kafka


async def test_reproduce_equals_the_published_digest_even_after_later_registry_changes(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str
) -> None:
    base = next(_bases) * 100_000
    await send_users(producer, random_users(base, 800, seed=41))
    directive = f"{unique}-audited"
    scope = DirectiveScope(models=["fable-5", "mythos-5"], selector=FOREIGN_TO_US)
    await send_directive(producer, issued(directive, 1, FOREIGN_TO_US, ["fable-5", "mythos-5"]))
    head, _ = await assessment_of(bootstrap, directive, "restrict")

    assert await reproduce(KafkaSettings(bootstrap=bootstrap), head["registry_offsets"], scope) == (
        head["model_digests"],
        head["digest"],
    )

    # the registry changes after the assessment: new foreign users, a deletion of an affected one
    await send_users(producer, [user(base + 900 + i, ["CN"]) for i in range(5)])
    await producer.send_and_wait(USERS.name, None, key=user_key(base + 1))
    await passed_marker(bootstrap, producer, unique, "after-changes")
    later = dict(service.view.offsets)

    assert await reproduce(KafkaSettings(bootstrap=bootstrap), head["registry_offsets"], scope) == (
        head["model_digests"],
        head["digest"],
    )
    assert (await reproduce(KafkaSettings(bootstrap=bootstrap), later, scope))[1] != head[
        "digest"
    ]  # the changes do matter beyond the offsets
    await lifted(bootstrap, producer, directive)


async def test_the_reproduce_command_prints_both_digests_and_fails_on_a_mismatch(
    service: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str
) -> None:
    directive = f"{unique}-cli"
    await send_directive(producer, issued(directive, 1, FOREIGN_TO_US, ["fable-5"]))
    head, _ = await assessment_of(bootstrap, directive, "restrict")
    runner = CliRunner()

    good = await asyncio.to_thread(runner.invoke, impact_cli, ["reproduce", directive, "--bootstrap", bootstrap])
    assert good.exit_code == 0, good.output
    assert head["digest"] in good.output and "match" in good.output

    forged = f"{unique}-forged"  # a published assessment whose digest the registry does not give
    scope = DirectiveScope(models=["fable-5"], selector=FOREIGN_TO_US)
    fake = AffectedSet(by_model={"fable-5": BitMap([1, 2, 3])})
    forged_head = assessment(Cause(forged, 1, None, utc_now()), "restrict", scope, fake, head["registry_offsets"])[0]
    # the head alone: without its chunks no restarted impact instance takes the forged directive as active
    await producer.send_and_wait(IMPACT.name, forged_head.model_dump_json().encode(), key=forged.encode())
    bad = await asyncio.to_thread(runner.invoke, impact_cli, ["reproduce", forged, "--bootstrap", bootstrap])
    assert bad.exit_code == 1
    assert fake.digest in bad.output and head["digest"] in bad.output  # same registry, so the honest digest

    missing = await asyncio.to_thread(
        runner.invoke, impact_cli, ["reproduce", f"{unique}-none", "--bootstrap", bootstrap]
    )
    assert missing.exit_code == 1 and "directive_id" in missing.output
    await lifted(bootstrap, producer, directive)
