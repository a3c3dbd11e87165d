"""The broker takes only authenticated TLS clients, and each principal only what its role's ACLs allow."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import TopicPartition

from devtools.broker import KafkaAccess
from shared.contracts.catalogue import ACKS, COMMANDS, NOTIFICATIONS
from shared.runtime.acl_requests import AclEntry, AclRequestFailed, apply_acls, create_acls
from shared.runtime.acls import ADMIN, AclBinding, agent_group, bindings, principals
from shared.runtime.kafka import admin, consuming, producing
from shared.runtime.settings import KafkaSettings

QUICK = {"request_timeout_ms": 5000}


async def test_an_anonymous_plaintext_client_is_refused(bootstrap: str) -> None:
    with pytest.raises(KafkaConnectionError):
        async with admin(KafkaSettings(bootstrap=bootstrap, security_protocol="PLAINTEXT", **QUICK), "tests-anonymous"):
            pass


async def test_a_wrong_password_is_refused(kafka_access: KafkaAccess) -> None:
    settings = kafka_access.settings("notifier", sasl_password="not-the-password", **QUICK)
    with pytest.raises(KafkaError):
        async with admin(settings, "tests-wrong-password"):
            pass


async def test_the_notifier_cannot_produce_commands_but_can_produce_notifications(kafka_access: KafkaAccess) -> None:
    async with producing(kafka_access.settings("notifier"), "tests-notifier-forges") as producer:
        await producer.send_and_wait(NOTIFICATIONS.name, b"{}", key=b"tests")  # its own topic: allowed
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(COMMANDS.name, b"{}", key=b"us-east")


async def test_an_agent_reads_commands_in_its_own_group_only(kafka_access: KafkaAccess) -> None:
    settings = kafka_access.settings("agent-us-east")
    async with consuming(settings, "tests-agent-own", COMMANDS.name, group_id=agent_group("us-east")) as own:
        await own.getmany(timeout_ms=500)  # joined its group and fetched: allowed
    with pytest.raises(GroupAuthorizationFailedError):
        async with consuming(settings, "tests-agent-other", COMMANDS.name, group_id=agent_group("eu-west")) as other:
            await other.getmany(timeout_ms=500)
    async with admin(settings, "tests-agent-offsets") as client:
        await client.list_consumer_group_offsets(agent_group("us-east"))
        with pytest.raises(GroupAuthorizationFailedError):
            await client.list_consumer_group_offsets(agent_group("eu-west"))


async def test_an_agents_replica_reads_in_its_own_group_and_not_in_another_clusters(kafka_access: KafkaAccess) -> None:
    settings = kafka_access.settings("agent-us-east")
    replica = agent_group("us-east", "agent-us-east-1")
    async with consuming(settings, "tests-replica-own", COMMANDS.name, group_id=replica) as own:
        await own.getmany(timeout_ms=500)  # joined its replica group (the prefixed ACL) and fetched: allowed
    async with admin(settings, "tests-replica-offsets") as client:
        await client.list_consumer_group_offsets(replica)
        with pytest.raises(GroupAuthorizationFailedError):
            await client.list_consumer_group_offsets(agent_group("eu-west", "agent-eu-west-0"))


async def test_an_agent_cannot_read_the_acks_of_any_cluster(kafka_access: KafkaAccess) -> None:
    async with consuming(kafka_access.settings("agent-us-east"), "tests-agent-acks") as reader:
        reader.assign([TopicPartition(ACKS.name, 0)])
        with pytest.raises(TopicAuthorizationFailedError):
            await reader.getmany(timeout_ms=2000)
            await reader.getmany(timeout_ms=2000)


async def test_only_the_admin_changes_acls_and_applying_them_again_changes_nothing(
    kafka_access: KafkaAccess, kafka: object
) -> None:
    grab = AclEntry.of(AclBinding("tooling", "CLUSTER", "kafka-cluster", "ALTER"))
    with pytest.raises(AclRequestFailed):
        await create_acls(kafka_access.settings("tooling"), [grab])
    agents = kafka.agents  # type: ignore[attr-defined]
    changes = await apply_acls(kafka_access.settings(ADMIN), bindings(agents), principals(agents))
    assert (changes.created, changes.deleted) == ([], [])
    assert changes.kept == len(bindings(agents))
