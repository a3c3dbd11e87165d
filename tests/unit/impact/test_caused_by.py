"""Impact carries who caused a directive event into its assessment, and a registry change's producers into
its deltas."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.impact.assessor import Assessor
from services.impact.registry_view import RegistryView
from shared.contracts.directives import CausedBy, DirectiveIssued, DirectiveLifted
from shared.contracts.impact import AffectedSetDelta, ImpactAssessed
from tests.unit.impact.population_builder import scope, user
from tests.unit.impact.test_registry import Record, upsert

FOREIGN_TO_US = {"kind": "foreign_national", "home_country": "US"}


@dataclass
class Follower:
    """The view follower's face to the assessor, over a real registry view: caught up, one lock."""

    view: RegistryView = field(default_factory=RegistryView)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def catch_up(self) -> None:
        return None

    def offsets(self) -> dict[int, int]:
        return dict(self.view.offsets)


def assessor() -> tuple[Assessor, list]:
    published: list = []

    async def publish_all(messages: list) -> None:
        published.extend(messages)

    async def publish(message) -> None:
        published.append(message)

    follower = Follower()
    follower.view.apply([upsert(1, 0), upsert(2, 1, nationalities=["US"])])
    return Assessor(follower, publish_all, publish, loaded=True), published  # type: ignore[arg-type]


def issued(**accountable) -> DirectiveIssued:
    return DirectiveIssued(
        producer="intake", directive_id="EXP-1", revision=1, title="t", scope=scope(FOREIGN_TO_US), **accountable
    )


async def test_an_assessment_names_the_proposer_and_approver_of_its_revision() -> None:
    impact, published = assessor()
    await impact.on_issued(
        issued(proposal_id="p-0123456789ab", proposed_by="alice@example.com", approved_by=["bob@example.com"])
    )
    head = next(m for m in published if isinstance(m, ImpactAssessed))
    assert head.caused_by == CausedBy(
        proposal_id="p-0123456789ab", proposed_by="alice@example.com", approved_by=["bob@example.com"]
    )


async def test_a_lift_assessment_names_the_emergency_issuer_and_reason() -> None:
    impact, published = assessor()
    await impact.on_issued(issued(proposed_by="alice@example.com", approved_by=["bob@example.com"]))
    lifted = DirectiveLifted(
        producer="intake",
        directive_id="EXP-1",
        revision=1,
        proposed_by="erin@example.com",
        emergency=True,
        emergency_reason="order revoked at 02:00",
    )
    await impact.on_lifted(lifted)
    heads = [m for m in published if isinstance(m, ImpactAssessed)]
    assert [h.action for h in heads] == ["restrict", "lift"]
    assert heads[1].caused_by is not None and heads[1].caused_by.emergency
    assert (heads[1].caused_by.proposed_by, heads[1].caused_by.emergency_reason) == (
        "erin@example.com",
        "order revoked at 02:00",
    )


async def test_a_directive_event_from_before_four_eyes_gives_an_assessment_without_a_cause() -> None:
    impact, published = assessor()
    await impact.on_issued(issued())
    assert next(m for m in published if isinstance(m, ImpactAssessed)).caused_by is None


async def test_a_registry_delta_names_the_producer_of_the_records_that_changed_it() -> None:
    impact, published = assessor()
    await impact.on_issued(issued(proposed_by="alice@example.com", approved_by=["bob@example.com"]))
    record = Record(b"3", user(3).model_copy(update={"producer": "identity-sync"}).model_dump_json().encode(), 2)
    applied = impact.follower.view.apply([record])
    assert applied.producers == {"identity-sync"}
    await impact.changed(applied.changed, applied.producers)
    deltas = [m for m in published if isinstance(m, AffectedSetDelta)]
    assert len(deltas) == 1 and deltas[0].caused_by == CausedBy(registry_producers=["identity-sync"])


async def test_a_tombstone_names_no_producer() -> None:
    view = RegistryView()
    view.apply([upsert(1, 0)])
    applied = view.apply([Record(b"1", None, 1)])
    assert applied.changed.tolist() == [1] and applied.producers == frozenset()
