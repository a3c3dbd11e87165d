"""deploy/k8s/strimzi/kafka.yaml: the Strimzi resources for Kafka inside Kubernetes are the generated ones, and they
say what the project's Kafka rules say (three KRaft nodes, SCRAM over TLS, replication 3, min.insync 2, every
catalogue topic, every principal with exactly the ACLs of its role)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.main import app
from cli.strimzi import OPERATIONS, RESOURCE_TYPES, render
from devtools.broker import DEMO_AGENTS
from shared.contracts.catalogue import ALL_TOPICS
from shared.runtime.acls import ADMIN, AclBinding, bindings, principals

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "k8s" / "strimzi" / "kafka.yaml"


def _committed() -> list[dict]:
    return list(yaml.safe_load_all(COMMITTED.read_text()))


def _kind(kind: str) -> list[dict]:
    return [r for r in _committed() if r["kind"] == kind]


def test_the_committed_file_is_what_the_cli_generates() -> None:
    result = CliRunner().invoke(app, ["acls", "strimzi"])
    assert result.exit_code == 0, result.output
    assert result.output == COMMITTED.read_text() == render(DEMO_AGENTS), (
        "deploy/k8s/strimzi/kafka.yaml is stale: regenerate it with `countermand acls strimzi > ...`"
    )


def test_three_combined_kraft_nodes_with_scram_over_tls_and_acls_enforced() -> None:
    (pool,) = _kind("KafkaNodePool")
    (kafka,) = _kind("Kafka")
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple", "superUsers": [f"User:{ADMIN}"]}
    config = kafka["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] == 2 and config["default.replication.factor"] == 3
    assert config["auto.create.topics.enable"] is False
    assert config["allow.everyone.if.no.acl.found"] is False


def test_the_kafka_version_is_the_one_the_tests_run() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    tested = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    (kafka,) = _kind("Kafka")
    assert kafka["spec"]["kafka"]["version"] == tested


def test_every_catalogue_topic_is_replicated_three_times_and_needs_two_in_sync() -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in _kind("KafkaTopic")}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for topic in ALL_TOPICS:
        spec = topics[topic.name]
        assert spec["partitions"] == topic.partitions and spec["replicas"] == 3
        assert spec["config"] == {**topic.configs(), "min.insync.replicas": "2"}


def test_every_principal_has_a_scram_user_with_exactly_its_roles_acls() -> None:
    users = {u["metadata"]["name"]: u["spec"] for u in _kind("KafkaUser")}
    assert set(users) == set(principals(DEMO_AGENTS))
    assert all(spec["authentication"] == {"type": "scram-sha-512"} for spec in users.values())
    assert "authorization" not in users[ADMIN]  # the super user
    kinds = {v: k for k, v in RESOURCE_TYPES.items()}
    operations = {v: k for k, v in OPERATIONS.items()}
    found = set()
    for name, spec in users.items():
        for acl in spec.get("authorization", {}).get("acls", []):
            resource = acl["resource"]
            target = resource.get("name", "kafka-cluster")
            pattern = "PREFIXED" if resource.get("patternType") == "prefix" else "LITERAL"
            found |= {
                AclBinding(name, kinds[resource["type"]], target, operations[op], pattern) for op in acl["operations"]
            }
    assert found == set(bindings(DEMO_AGENTS))
