"""Which impact instance is active: the group gives every directive partition to one member, the latest to promote
keeps them through a rebalance, and an instance that loses them stops instead of going on."""

from __future__ import annotations

import asyncio

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.structs import TopicPartition

from services.impact.leadership import ASSIGNOR, Leadership, claim_of, sole_assignor, sole_member

TOPIC = "compliance.directives.v1"


class Cluster:
    """What the assignor reads of the cluster metadata: a topic's partitions."""

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0, 1, 2} if topic == TOPIC else None


def joined(claims: dict[str, int | None]) -> dict[str, ConsumerProtocolMemberMetadata]:
    """The members' join metadata as each would state it."""
    return {member: sole_assignor(lambda e=epoch: e).metadata([TOPIC]) for member, epoch in claims.items()}


def test_a_fresh_group_gives_every_partition_to_the_first_member_and_nothing_to_the_others() -> None:
    assignment = sole_assignor(lambda: None).assign(Cluster(), joined({"b-2": None, "a-1": None, "c-3": None}))
    assert assignment["a-1"].assignment == [(TOPIC, [0, 1, 2])]
    assert assignment["b-2"].assignment == [] and assignment["c-3"].assignment == []


def test_the_holder_keeps_the_partitions_when_another_instance_joins() -> None:
    assignment = sole_assignor(lambda: None).assign(Cluster(), joined({"a-1": None, "z-9": 4}))
    assert assignment["z-9"].assignment == [(TOPIC, [0, 1, 2])] and assignment["a-1"].assignment == []


def test_of_two_claimants_the_latest_to_promote_wins_over_a_paused_predecessor() -> None:
    # The predecessor (epoch 3) was fenced by the newer active (epoch 4): handing it back would stop both.
    assert sole_member({"a-old": 3, "b-new": 4}) == "b-new"
    assert sole_member({"a-1": None, "b-2": None}) == "a-1"


def test_a_claim_round_trips_and_anything_else_claims_nothing() -> None:
    metadata = sole_assignor(lambda: 7).metadata([TOPIC])
    assert claim_of(metadata.user_data) == 7 and metadata.subscription == [TOPIC]
    assert claim_of(b"") is None and claim_of(b"garbage!") is None
    assert sole_assignor(lambda: None).name == ASSIGNOR


async def test_assigned_partitions_promote_once_and_losing_them_stops_the_instance() -> None:
    promoted: list[int] = []
    lost: list[str] = []

    async def promote() -> int:
        promoted.append(5)
        return 5

    leadership = Leadership(promote=promote, lost=lost.append)
    assert leadership.role == "standby" and leadership.claim() is None
    listener = leadership.listener()
    await listener.on_partitions_assigned({TopicPartition(TOPIC, 0)})
    await asyncio.wait_for(leadership.ready.wait(), 5)
    assert leadership.role == "active" and leadership.claim() == 5 and leadership.settled.is_set()
    await listener.on_partitions_revoked({TopicPartition(TOPIC, 0)})  # a rebalance: given back, no new promotion
    await listener.on_partitions_assigned({TopicPartition(TOPIC, 0)})
    assert promoted == [5] and lost == []
    await listener.on_partitions_assigned(set())
    assert lost == ["the directive partitions were assigned to another impact instance"]


async def test_an_instance_given_nothing_stands_by_and_a_failed_promotion_stops_it() -> None:
    lost: list[str] = []

    async def failing() -> int:
        raise ConnectionError("broker unreachable")

    standby = Leadership(promote=failing, lost=lost.append)
    await standby.listener().on_partitions_assigned(set())
    assert standby.settled.is_set() and standby.role == "standby" and lost == []
    standby.assigned({0})
    await asyncio.sleep(0.05)
    assert not standby.ready.is_set() and lost == ["promotion failed: ConnectionError: broker unreachable"]
    await standby.stop()
