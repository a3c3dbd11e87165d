"""The deployment files (Dockerfile, docker-compose.yml, deploy/k8s) agree with the code and the Kafka rules."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.imports.columns import parse_mapping
from cli.imports.importer import prepare
from devtools.stack import SIGNED_TOPICS
from shared.contracts.catalogue import ACKS
from shared.runtime.record_signing import (
    RECORD_SIGNERS,
    TRUSTED_SIGNERS,
    agent_key_set_file,
    agent_signer,
    key_files,
)
from shared.runtime.settings import SECTIONS, ServiceSettings, variable_names
from shared.runtime.signing import KeySet, Signer

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("intake", "impact", "enforcement", "notifier", "audit", "console", "agent")
DEMO_CLUSTERS = {
    "us-east": ("us-east-1", {"fable-5", "mythos-5", "lyric-4"}),
    "eu-west": ("eu-west-1", {"fable-5", "mythos-5"}),
    "ap-south": ("ap-south-1", {"fable-5", "lyric-4"}),
}
STATE_DIR = "/var/lib/countermand"
ONE_SHOT_JOBS = (
    "acls",
    "topics",
    "registry",
    "audit-keys",
    "signing-keys",
)  # run to completion, then the services start
NOT_OURS = ("kafka", "prometheus")  # official images, not Countermand's
PROMETHEUS = ROOT / "deploy" / "prometheus"
GENERATED = ("../prometheus", "../registry")  # kustomizations beside deploy/k8s that make ConfigMaps from files


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def one_shot_jobs() -> set[str]:
    """Compose services that run once and exit (restart: "no"): the topics job, the audit key generator."""
    return {name for name, spec in compose_services().items() if spec.get("restart") == "no"}


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def countermand_services() -> dict[str, dict[str, Any]]:
    """The compose services that run a Countermand service (`python -m services.X`)."""
    return {name: spec for name, spec in compose_services().items() if name not in (*ONE_SHOT_JOBS, *NOT_OURS)}


def k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def k8s_workloads() -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def ours(workload: dict[str, Any]) -> bool:
    """Whether a workload runs Countermand's image (Prometheus runs its official one)."""
    return all(c["image"] == "countermand" for c in containers(workload))


def k8s_services() -> Iterator[tuple[dict[str, Any], dict[str, Any], str]]:
    """(workload, its main container, the service it runs) for every Countermand Deployment and StatefulSet."""
    for workload in k8s_workloads():
        if workload["kind"] != "Job" and ours(workload):
            main = workload["spec"]["template"]["spec"]["containers"][0]
            yield workload, main, module_of(argv(main["command"]))


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


def argv(command: Any) -> list[str]:
    return command.split() if isinstance(command, str) else [str(part) for part in command or []]


def service_modules(commands: Iterator[list[str]]) -> list[str]:
    """Every X of `python -m services.X` in the given command lines."""
    found = []
    for line in commands:
        for i, part in enumerate(line[:-1]):
            if part == "-m" and line[i + 1].startswith("services."):
                found.append(line[i + 1].removeprefix("services."))
    return found


def module_of(command: list[str]) -> str:
    modules = service_modules(iter([command]))
    assert len(modules) == 1, command
    return modules[0]


def compose_commands() -> Iterator[list[str]]:
    for spec in compose_services().values():
        yield argv(spec.get("entrypoint")) + argv(spec.get("command"))


def k8s_commands() -> Iterator[list[str]]:
    for workload in k8s_workloads():
        for container in containers(workload):
            yield argv(container.get("command")) + argv(container.get("args"))


def option(line: list[str], name: str) -> str:
    assert name in line, f"{name} missing from {line}"
    return line[line.index(name) + 1]


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, ServiceSettings) and c is not ServiceSettings
    ]
    assert len(classes) == 1, f"services/{service}/settings.py should define one settings class: {classes}"
    return classes[0]


def load_settings(service: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's settings as the deployed environment gives them; every COUNTERMAND_<NAME>_ name must be a field."""
    cls = settings_class(service)
    known = {cls.model_config["env_prefix"] + name.upper() for name in cls.model_fields}
    for nested in SECTIONS:
        known |= variable_names(nested)
    unknown = [k for k in env if k.startswith("COUNTERMAND_") and k not in known]
    assert not unknown, f"{service}: no such setting {unknown}"
    for key in [k for k in os.environ if k.startswith("COUNTERMAND_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return cls()


# --- the image -----------------------------------------------------------------------------------


def test_image_is_python_311_slim_non_root_with_pinned_requirements() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert dockerfile.index("pip install -r requirements.txt") < dockerfile.index("pip install --no-deps .")
    requirements = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line for line in requirements), "requirements.txt must pin every package"


def test_build_context_leaves_out_local_state_and_caches() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".run", "deploy/kafka/libs", ".git", "bench/results"} <= ignored


# --- docker-compose.yml --------------------------------------------------------------------------


def test_every_compose_service_has_a_healthcheck_except_the_one_shot_jobs() -> None:
    services = compose_services()
    for job in ("topics", "acls"):
        assert services[job].get("restart") == "no" and "healthcheck" not in services[job]
        assert services[job]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert argv(services["topics"]["command"])[:3] == ["countermand", "topics", "apply"]
    missing = [
        name
        for name, spec in services.items()
        if name not in one_shot_jobs() and not spec.get("healthcheck", {}).get("test")
    ]
    assert not missing, f"no healthcheck: {missing}"


def test_compose_services_start_after_the_topics_job_succeeded() -> None:
    for name, spec in compose_services().items():
        if name in NOT_OURS or name in one_shot_jobs():
            continue
        assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully", name


def test_compose_imports_the_sample_registry_before_intake_takes_directives() -> None:
    services = compose_services()
    job = services["registry"]
    line = argv(job["command"])
    assert line[:3] == ["countermand", "registry", "import"]
    assert option(line, "--as-of"), "a fixed --as-of: the same records every time the job runs"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in job["volumes"]}
    file = Path(line[3])
    host = ROOT / mounts[str(file.parent)] / file.name
    assert host.is_file() and host.is_relative_to(ROOT / "deploy"), host
    assert services["intake"]["depends_on"]["registry"]["condition"] == "service_completed_successfully"
    assert job["environment"]["COUNTERMAND_KAFKA_BOOTSTRAP"] == "kafka:19092"


def test_the_sample_registry_imports_every_row() -> None:
    line = argv(compose_services()["registry"]["command"])
    plan = prepare(ROOT / "deploy" / "registry" / Path(line[3]).name, parse_mapping([]), datetime.now(UTC))
    assert plan.checked.errors == [] and len(plan.checked.upserts) == plan.rows >= 100


def test_prometheus_scrapes_every_compose_service_on_its_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]
        for target in static["targets"]
    }
    expected = set()
    for name, spec in countermand_services().items():
        settings = load_settings(module_of(argv(spec["command"])), spec["environment"], monkeypatch)
        expected.add(f"{name}:{settings.http_port}")
    assert targets == expected
    for job in config["scrape_configs"]:  # the services' own labels must not be renamed exported_*
        assert not {"service", "cluster"} & {k for s in job["static_configs"] for k in s.get("labels", {})}


def test_compose_prometheus_is_pinned_and_loads_the_rules() -> None:
    prometheus = compose_services()["prometheus"]
    name, _, tag = prometheus["image"].partition(":")
    assert name == "prom/prometheus" and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    mounts = {m.split(":")[1]: m.split(":")[0] for m in prometheus["volumes"]}
    config_file = next(a.split("=", 1)[1] for a in argv(prometheus["command"]) if a.startswith("--config.file="))
    assert (ROOT / mounts[config_file]).resolve() == PROMETHEUS / "prometheus.yml"
    rules_dir = Path(config_file).parent
    for rule_file in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]:
        assert (ROOT / mounts[str(rules_dir / rule_file)]).resolve() == PROMETHEUS / rule_file
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make tools` installs Debian's prometheus package (make test does)"
    done = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_every_service_and_one_agent_per_demo_cluster() -> None:
    modules = service_modules(compose_commands())
    assert set(modules) == set(SERVICES)
    assert modules.count("agent") == len(DEMO_CLUSTERS)
    assert {f"agent-{c}" for c in DEMO_CLUSTERS} <= set(compose_services())


def test_every_service_module_named_in_compose_and_k8s_is_a_runnable_package() -> None:
    named = set(service_modules(compose_commands())) | set(service_modules(k8s_commands()))
    assert named, "no `python -m services.X` found"
    missing = [
        m
        for m in sorted(named)
        if not (ROOT / "services" / m / "__init__.py").is_file()
        or not (ROOT / "services" / m / "__main__.py").is_file()
    ]
    assert not missing, f"no package services/<name> with __init__.py and __main__.py: {missing}"


def test_kafka_is_the_official_image_pinned_to_a_4x_release() -> None:
    image = compose_services()["kafka"]["image"]
    name, _, tag = image.partition(":")
    assert name == "apache/kafka"
    assert re.fullmatch(r"4\.\d+\.\d+", tag), f"pin a 4.x release, not {tag or 'latest'!r}"


def test_compose_audit_signs_with_a_key_generated_once_into_its_own_volume() -> None:
    services = compose_services()
    keygen = argv(services["audit-keys"]["command"])
    assert keygen[:3] == ["countermand", "audit", "keygen"] and "--if-missing" in keygen
    audit = services["audit"]
    key = audit["environment"]["COUNTERMAND_AUDIT_SIGNING_KEY_FILE"]
    assert key == f"{keygen[3]}/audit.pem"
    assert f"audit-keys:{keygen[3]}:ro" in audit["volumes"]
    assert audit["depends_on"]["audit-keys"]["condition"] == "service_completed_successfully"


def test_k8s_audit_signs_with_a_key_from_a_secret() -> None:
    audit = next((w, m) for w, m, service in k8s_services() if service == "audit")
    workload, main = audit
    env = {e["name"]: e.get("value") for e in main["env"]}
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert env["COUNTERMAND_AUDIT_SIGNING_KEY_FILE"].startswith(mounts["signing-key"] + "/")
    assert volumes["signing-key"]["secret"]["secretName"]


def audited_key_sets(public_mount: str) -> dict[str, str]:
    """What the audit should check each signed topic against, under the mounted public key sets: the signer's set
    (as the local stack gives it), and for acks and heartbeats the agents' set enforcement trusts."""
    sets = {topic: f"{public_mount}/{key_files(ROOT, signer)[1].name}" for topic, signer in SIGNED_TOPICS.items()}
    return {**sets, ACKS.name: f"{public_mount}/{agent_key_set_file(ROOT).name}"}


def test_compose_audit_checks_every_signed_topic_acks_included() -> None:
    audit = compose_services()["audit"]
    public_mount = next(target for target, source in _volume_mounts(audit).items() if source == "signing-public")
    assert f"signing-public:{public_mount}:ro" in audit["volumes"]
    keys = json.loads(audit["environment"]["COUNTERMAND_AUDIT_RECORD_KEYS"])
    assert keys == audited_key_sets(public_mount)
    assert audit["depends_on"]["signing-keys"]["condition"] == "service_completed_successfully"


def test_k8s_audit_checks_every_signed_topic_acks_included() -> None:
    workload, main = next((w, m) for w, m, service in k8s_services() if service == "audit")
    env = {e["name"]: e.get("value") for e in main["env"]}
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["record-signing-public"]["configMap"]["name"] == "countermand-signing-public"
    assert mounts["record-signing-public"]["readOnly"] is True
    keys = json.loads(env["COUNTERMAND_AUDIT_RECORD_KEYS"])
    assert keys == audited_key_sets(mounts["record-signing-public"]["mountPath"])


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    tested = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    assert compose_services()["kafka"]["image"] == f"apache/kafka:{tested}"


def test_every_compose_service_is_healthy_only_when_ready() -> None:
    for name, spec in compose_services().items():
        if name in NOT_OURS or name in one_shot_jobs():
            continue
        assert "/readyz" in " ".join(spec["healthcheck"]["test"]), name
    assert "/-/ready" in " ".join(compose_services()["prometheus"]["healthcheck"]["test"])


def test_every_k8s_service_has_readiness_and_liveness_probes() -> None:
    for workload, main, _ in k8s_services():
        name = workload["metadata"]["name"]
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        live = main["livenessProbe"]
        assert live.get("httpGet", {}).get("path") == "/healthz" or "tcpSocket" in live, name
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert main["readinessProbe"]["httpGet"]["port"] in ports, name


def test_k8s_keeps_impact_snapshot_on_a_persistent_volume() -> None:
    claims = {o["metadata"]["name"] for o in k8s_objects() if o["kind"] == "PersistentVolumeClaim"}
    impact = next(w for w, _, service in k8s_services() if service == "impact")
    state = next(v for v in impact["spec"]["template"]["spec"]["volumes"] if v["name"] == "state")
    assert state["persistentVolumeClaim"]["claimName"] in claims


@pytest.fixture(scope="module")
def compose_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make compose-secrets` makes, made once into a temporary folder."""
    folder = tmp_path_factory.mktemp("compose") / "compose-secrets"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "kafka" / "kafkalocal.py"),
            "secrets",
            "--secrets",
            str(folder),
            "--compose",
        ],
        check=True,
    )
    return folder


def compose_kafka_properties(folder: Path) -> dict[str, str]:
    """The server.properties of the compose broker."""
    lines = (folder / "compose" / "server.properties").read_text().replace("\\\n", "").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_compose_kafka_runs_kraft_single_node_secured_without_auto_create(compose_secrets: Path) -> None:
    props = compose_kafka_properties(compose_secrets)
    assert props["auto.create.topics.enable"] == "false"
    assert set(props["process.roles"].split(",")) == {"broker", "controller"}
    assert props["controller.quorum.voters"].startswith(f"{props['node.id']}@")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
    ):
        assert int(props[key]) == 1, key
    assert int(props["message.max.bytes"]) == 2097152
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false" and props["super.users"] == "User:admin"
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    assert protocols.pop("CONTROLLER") == "SASL_PLAINTEXT"  # PLAIN, as admin; never anonymous
    assert set(protocols.values()) == {"SASL_SSL"}
    kafka = compose_services()["kafka"]
    assert "/opt/kafka/bin/" in " ".join(argv(kafka["healthcheck"]["test"]))
    assert {"kafka-start", "kafka-server-properties", "kafka-keystore", "kafka-ca"} <= set(kafka["secrets"])


def test_compose_holds_no_kafka_password_and_every_client_its_own_principal(compose_secrets: Path) -> None:
    assert "PASSWORD" not in COMPOSE.read_text()
    for name, spec in compose_services().items():
        if name in NOT_OURS or "COUNTERMAND_KAFKA_BOOTSTRAP" not in spec.get("environment", {}):
            continue  # a job that needs no Kafka (the audit key generator)
        principal = {"acls": "admin", "topics": "tooling", "registry": "tooling"}.get(name, name)
        assert spec["env_file"] == [f".run/compose-secrets/compose/{principal}.env"], name
        assert "kafka-ca" in spec["secrets"], name
        env = dict(
            line.split("=", 1) for line in (compose_secrets / "compose" / f"{principal}.env").read_text().split()
        )
        assert env["COUNTERMAND_KAFKA_SASL_USERNAME"] == principal
        assert env["COUNTERMAND_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["COUNTERMAND_KAFKA_SSL_CAFILE"] == "/run/secrets/kafka-ca"


def test_compose_applies_acls_as_admin_before_the_topics_job() -> None:
    services = compose_services()
    assert argv(services["acls"]["command"])[:3] == ["countermand", "acls", "apply"]
    assert services["topics"]["depends_on"]["acls"]["condition"] == "service_completed_successfully"


def test_compose_services_reach_kafka_on_its_internal_listener(compose_secrets: Path) -> None:
    advertised = compose_kafka_properties(compose_secrets)["advertised.listeners"]
    for name, spec in compose_services().items():
        if name in NOT_OURS or "COUNTERMAND_KAFKA_BOOTSTRAP" not in spec.get("environment", {}):
            continue  # a job that needs no Kafka (the audit key generator)
        bootstrap = spec["environment"]["COUNTERMAND_KAFKA_BOOTSTRAP"]
        assert f"//{bootstrap}" in advertised, name
        assert spec["environment"]["COUNTERMAND_LOG_FORMAT"] == "json", name


def test_compose_publishes_intake_on_8080_and_agents_on_8101_to_8103() -> None:
    services = compose_services()
    published = {name: [str(p).rsplit(":", 2)[-2] for p in spec.get("ports", [])] for name, spec in services.items()}
    assert published["intake"] == ["8080"]
    assert [published[f"agent-{c}"] for c in DEMO_CLUSTERS] == [["8101"], ["8102"], ["8103"]]


def test_compose_environment_is_what_each_service_reads(monkeypatch: pytest.MonkeyPatch, compose_secrets: Path) -> None:
    for name, spec in compose_services().items():
        if name in NOT_OURS or name in one_shot_jobs():
            continue
        service = module_of(argv(spec["command"]))
        env_file = compose_secrets / spec["env_file"][0].removeprefix(".run/compose-secrets/")
        env = {**dict(line.split("=", 1) for line in env_file.read_text().split()), **spec["environment"]}
        settings = load_settings(service, env, monkeypatch)
        assert settings.kafka.sasl_username == name
        assert settings.kafka.bootstrap == "kafka:19092"
        assert str(settings.state_dir) == STATE_DIR, name
        if service in ("intake", "agent"):
            assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080), name
            test = " ".join(argv(spec["healthcheck"]["test"]))
            assert f"127.0.0.1:{settings.http_port}/readyz" in test, name
        if service == "agent":
            region, models = DEMO_CLUSTERS[settings.cluster_id]
            assert name == f"agent-{settings.cluster_id}"
            assert (settings.region, set(settings.models)) == (region, models)
            assert f"{name}-state:{STATE_DIR}" in spec["volumes"]


# --- deploy/k8s ----------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests | set(GENERATED)
    assert kustomization["namespace"] == "countermand"


def test_k8s_topics_job_applies_replication_3_and_min_insync_2() -> None:
    jobs = [o for o in k8s_objects() if o["kind"] == "Job" and o["metadata"]["name"] == "countermand-topics"]
    assert len(jobs) == 1
    line = argv(containers(jobs[0])[0]["command"]) + argv(containers(jobs[0])[0].get("args"))
    assert line[:3] == ["countermand", "topics", "apply"]
    assert option(line, "--replication") == "3"
    assert option(line, "--min-insync-replicas") == "2"


def test_k8s_runs_every_service_and_one_agent_per_demo_cluster() -> None:
    modules = service_modules(k8s_commands())
    assert set(modules) == set(SERVICES)
    assert modules.count("agent") == len(DEMO_CLUSTERS)


def test_k8s_keeps_enforcement_notifier_audit_and_agent_state_on_volumes() -> None:
    headless = {
        o["metadata"]["name"] for o in k8s_objects() if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"
    }
    stateful = {}
    for workload, main, _ in k8s_services():
        if workload["kind"] == "StatefulSet":
            assert workload["spec"]["serviceName"] in headless, workload["metadata"]["name"]
            if workload["metadata"]["name"] == "intake":  # a StatefulSet for its stable names; holds no state
                continue
            claims = {c["metadata"]["name"] for c in workload["spec"]["volumeClaimTemplates"]}
            mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
            assert mounts.get("state") == STATE_DIR and "state" in claims, workload["metadata"]["name"]
            stateful[workload["metadata"]["name"]] = workload
    assert {"enforcement", "notifier", "audit"} | {f"agent-{c}" for c in DEMO_CLUSTERS} <= set(stateful)


def test_k8s_containers_have_requests_and_limits() -> None:
    for workload in k8s_workloads():
        for container in containers(workload):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (workload["metadata"]["name"], kind)


def test_k8s_http_services_are_ready_on_readyz_and_exposed() -> None:
    services = {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "Service"}
    for workload, main, service in k8s_services():
        if service not in ("intake", "agent"):
            continue
        name = workload["metadata"]["name"]
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert services[name]["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"], name


def test_every_k8s_agent_has_a_disruption_budget() -> None:
    budgets = {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "PodDisruptionBudget"}
    for workload, _, service in k8s_services():
        if service == "agent":
            budget = budgets[workload["metadata"]["name"]]
            assert budget["spec"]["selector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
            assert budget["spec"]["minAvailable"] == 1  # a drain leaves one replica answering


def test_k8s_runs_two_agent_replicas_per_cluster_each_named_after_its_pod_and_spread_over_nodes() -> None:
    """Two replicas are safe when each reads every command in its own group, keeps its own state and acknowledges
    under its own id: the pod name, which a StatefulSet keeps across restarts (as intake's instance name)."""
    agents = [(w, main) for w, main, service in k8s_services() if service == "agent"]
    assert len(agents) == len(DEMO_CLUSTERS)
    for workload, main in agents:
        name = workload["metadata"]["name"]
        assert workload["kind"] == "StatefulSet" and workload["spec"]["replicas"] == 2, name
        assert workload["spec"]["volumeClaimTemplates"], name  # a volume per replica
        replica = {e["name"]: e for e in main["env"]}["COUNTERMAND_AGENT_REPLICA_ID"]
        assert replica["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", name
        spread = workload["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        [term] = spread["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname", name
        assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]


def test_k8s_environment_is_what_each_service_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")["data"]
    assert shared["COUNTERMAND_LOG_FORMAT"] == "json" and shared["COUNTERMAND_KAFKA_BOOTSTRAP"]
    clusters = set()
    for _, main, service in k8s_services():
        env = dict(shared)
        env.update({e["name"]: e.get("value", "pod-0") for e in main.get("env", [])})
        env.update(COUNTERMAND_KAFKA_SASL_USERNAME="from-secret", COUNTERMAND_KAFKA_SASL_PASSWORD="from-secret")
        settings = load_settings(service, env, monkeypatch)
        assert str(settings.state_dir) == STATE_DIR
        if service in ("intake", "agent"):
            assert settings.http_port == main["ports"][0]["containerPort"] and settings.http_host == "0.0.0.0"
        if service == "agent":
            region, models = DEMO_CLUSTERS[settings.cluster_id]
            assert (settings.region, set(settings.models)) == (region, models)
            clusters.add(settings.cluster_id)
    assert clusters == set(DEMO_CLUSTERS)


def k8s_principal(workload: dict[str, Any]) -> str:
    name = workload["metadata"]["name"]
    return {"countermand-topics": "tooling", "countermand-registry": "tooling", "countermand-acls": "admin"}.get(
        name, name
    )


def test_every_k8s_container_logs_in_to_kafka_as_its_workloads_principal_over_tls() -> None:
    shared = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")["data"]
    assert shared["COUNTERMAND_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert shared["COUNTERMAND_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert not [k for k in shared if "PASSWORD" in k]
    for workload in filter(ours, k8s_workloads()):
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == "countermand-kafka-ca"
        for container in containers(workload):
            secrets = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
            assert secrets == [f"countermand-kafka-{k8s_principal(workload)}"], workload["metadata"]["name"]
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert shared["COUNTERMAND_KAFKA_SSL_CAFILE"].startswith(mounts["kafka-ca"] + "/")


def test_k8s_acls_job_covers_every_deployed_agent() -> None:
    job = next(o for o in k8s_objects() if o["kind"] == "Job" and o["metadata"]["name"] == "countermand-acls")
    line = argv(containers(job)[0]["command"])
    assert line[:3] == ["countermand", "acls", "apply"]
    agents = {line[i + 1] for i, part in enumerate(line) if part == "--agent"}
    assert agents == set(DEMO_CLUSTERS)


# --- Kubernetes: the registry import job and Prometheus -------------------------------------------


def generated_config_maps() -> dict[str, dict[str, Path]]:
    """ConfigMaps the kustomizations in GENERATED make: name -> {key: the file it holds}."""
    made = {}
    for folder in GENERATED:
        root = (K8S / folder).resolve()
        kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
        assert kustomization["generatorOptions"]["disableNameSuffixHash"], "the manifests refer to the plain names"
        for generator in kustomization["configMapGenerator"]:
            files = {}
            for entry in generator["files"]:
                key, _, file = entry.rpartition("=")
                files[key or Path(file).name] = root / file
            made[generator["name"]] = files
    return made


def workload_named(name: str) -> dict[str, Any]:
    return next(o for o in k8s_workloads() if o["metadata"]["name"] == name)


def mounted_file(workload: dict[str, Any], container: dict[str, Any], path: str) -> Path:
    """The repository file a container sees at `path`, through a ConfigMap generated from it."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        inside = Path(mount["mountPath"])
        if Path(path) == inside or Path(path).parent == inside:
            config_map = volumes[mount["name"]]["configMap"]["name"]
            key = mount.get("subPath") or Path(path).name
            return generated_config_maps()[config_map][key]
    raise AssertionError(f"nothing mounted at {path} in {workload['metadata']['name']}")


def test_k8s_imports_the_sample_registry_as_compose_does() -> None:
    job = workload_named("countermand-registry")
    assert job["kind"] == "Job" and job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    (container,) = containers(job)
    line = argv(container["command"])
    compose_line = argv(compose_services()["registry"]["command"])
    assert line[:3] == compose_line[:3] == ["countermand", "registry", "import"]
    assert option(line, "--as-of") == option(compose_line, "--as-of"), "the same records as compose imports"
    file = mounted_file(job, container, line[3])
    assert file == ROOT / "deploy" / "registry" / Path(compose_line[3]).name and file.is_file()
    plan = prepare(file, parse_mapping([]), datetime.now(UTC))
    assert plan.checked.errors == [] and len(plan.checked.upserts) == plan.rows >= 100


def test_k8s_prometheus_scrapes_every_pod_of_every_service_on_its_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    prometheus = workload_named("prometheus")
    (container,) = containers(prometheus)
    config_file = next(a.split("=", 1)[1] for a in argv(container["args"]) if a.startswith("--config.file="))
    config = yaml.safe_load(mounted_file(prometheus, container, config_file).read_text())
    discovered = {
        (name, sd["port"]): job["job_name"]
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    headless = {
        o["metadata"]["name"]: o["spec"]["selector"]
        for o in k8s_objects()
        if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"
    }
    shared = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")["data"]
    scraped = set()
    for workload, main, service in k8s_services():
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        env = {**shared, **{e["name"]: e.get("value", "pod-0") for e in main.get("env", [])}}
        env.update(COUNTERMAND_KAFKA_SASL_USERNAME="from-secret", COUNTERMAND_KAFKA_SASL_PASSWORD="from-secret")
        port = load_settings(service, env, monkeypatch).http_port
        names = [n for n, selector in headless.items() if selector.items() <= pod_labels.items()]
        jobs = {discovered.get((n, port)) for n in names} - {None}
        assert jobs == {service}, f"{workload['metadata']['name']}: scraped by {jobs or 'no job'} on port {port}"
        scraped.add(workload["metadata"]["name"])
    assert {name for name, _ in discovered} <= set(headless), "every discovered name is a headless Service"
    for job in config["scrape_configs"]:  # the services' own labels must not be renamed exported_*
        assert not job.get("relabel_configs") and not job.get("static_configs")


def test_k8s_prometheus_loads_the_rules_file_from_a_config_map_and_runs_composes_image() -> None:
    prometheus = workload_named("prometheus")
    (container,) = containers(prometheus)
    assert container["image"] == compose_services()["prometheus"]["image"]
    config_file = next(a.split("=", 1)[1] for a in argv(container["args"]) if a.startswith("--config.file="))
    config = yaml.safe_load(mounted_file(prometheus, container, config_file).read_text())
    for rule_file in config["rule_files"]:
        assert mounted_file(prometheus, container, str(Path(config_file).parent / rule_file)) == PROMETHEUS / rule_file
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"


def test_promtool_accepts_the_k8s_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make tools` installs Debian's prometheus package (make test does)"
    done = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS / "prometheus-k8s.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- record signing keys ---------------------------------------------------------------------------


def _signing_mode_settings() -> list[tuple[str, Any]]:
    """Every COUNTERMAND_SIGNING_MODE any manifest sets: (where, value)."""
    found = [("x-countermand-env", compose()["x-countermand-env"].get("COUNTERMAND_SIGNING_MODE"))]
    for name, spec in compose_services().items():
        env = spec.get("environment") or {}
        if isinstance(env, dict) and "COUNTERMAND_SIGNING_MODE" in env:
            found.append((f"compose {name}", env["COUNTERMAND_SIGNING_MODE"]))
    for obj in k8s_objects():
        if obj["kind"] == "ConfigMap" and "COUNTERMAND_SIGNING_MODE" in obj.get("data", {}):
            found.append((f"k8s {obj['metadata']['name']}", obj["data"]["COUNTERMAND_SIGNING_MODE"]))
    for workload in k8s_workloads():
        for container in containers(workload):
            for e in container.get("env", []):
                if e["name"] == "COUNTERMAND_SIGNING_MODE":
                    found.append((f"k8s {workload['metadata']['name']}", e.get("value")))
    return found


def test_no_manifest_turns_record_signing_off() -> None:
    found = _signing_mode_settings()
    assert found and all(value == "on" for _, value in found), found


def _volume_mounts(spec: dict[str, Any]) -> dict[str, str]:
    """A compose service's named volumes by their mount path."""
    mounts = {}
    for line in spec.get("volumes", []):
        source, target, *_ = line.split(":")
        mounts[target] = source
    return mounts


def test_compose_gives_every_signer_its_key_and_every_verifier_the_key_set_it_trusts() -> None:
    job = compose_services()["signing-keys"]
    line = argv(job["command"])
    assert line[:3] == ["countermand", "signing", "keygen"] and "--if-missing" in line
    made_for = [line[i + 1] for i, part in enumerate(line) if part == "--service"] or list(RECORD_SIGNERS)
    assert set(RECORD_SIGNERS) <= set(made_for)
    agents_made = {line[i + 1] for i, part in enumerate(line) if part == "--agent"}
    job_volumes = {target: source for target, source in _volume_mounts(job).items()}
    folder = Path(line[3])
    seen_signers, seen_verifiers = set(), set()
    for name, spec in countermand_services().items():
        service = module_of(argv(spec["command"]))
        env = {**compose()["x-countermand-env"], **spec["environment"]}
        mounts = _volume_mounts(spec)
        signer = agent_signer(env["COUNTERMAND_AGENT_CLUSTER_ID"]) if service == "agent" else service
        if service == "agent":
            assert env["COUNTERMAND_AGENT_CLUSTER_ID"] in agents_made, f"{name}: the job makes no key for it"
        if service in RECORD_SIGNERS or service == "agent":
            private, _ = key_files(folder, signer)
            volume = job_volumes[str(private.parent)]
            assert volume == f"signing-{signer}", name  # a volume of its own: no other service mounts it
            mount = next(target for target, source in mounts.items() if source == volume)
            assert env["COUNTERMAND_SIGNING_KEY_FILE"] == f"{mount}/{private.name}", name
            assert env["COUNTERMAND_SIGNING_KEY_ID"] == f"{signer}-1", name
            seen_signers.add(service)
        else:
            assert "COUNTERMAND_SIGNING_KEY_FILE" not in env, name
        for source in mounts.values():
            if source.startswith("signing-") and source != "signing-public":
                assert source == f"signing-{signer}", f"{name} mounts another service's private key ({source})"
        if service == "enforcement":
            public_mount = next(target for target, source in mounts.items() if source == "signing-public")
            agents = agent_key_set_file(Path(public_mount).parent)
            assert env["COUNTERMAND_ENFORCEMENT_AGENT_KEYS_FILE"] == f"{public_mount}/{agents.name}", name
        if service in TRUSTED_SIGNERS:
            _, public = key_files(folder, TRUSTED_SIGNERS[service])
            volume = job_volumes[str(public.parent)]
            mount = next(target for target, source in mounts.items() if source == volume)
            assert env["COUNTERMAND_SIGNING_TRUSTED_KEYS_FILE"] == f"{mount}/{public.name}", name
            seen_verifiers.add(service)
        assert spec.get("depends_on", {}).get("signing-keys", {}).get("condition") == "service_completed_successfully"
    assert seen_signers == {*RECORD_SIGNERS, "agent"} and seen_verifiers == set(TRUSTED_SIGNERS)


def test_k8s_gives_every_signer_its_key_secret_and_every_verifier_the_public_key_sets() -> None:
    seen_signers, seen_verifiers = set(), set()
    for workload, main, service in k8s_services():
        env = {e["name"]: e.get("value") for e in main.get("env", [])}
        mounts = {m["name"]: m["mountPath"] for m in main.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        name = workload["metadata"]["name"]
        if service in RECORD_SIGNERS or service == "agent":
            signer = agent_signer(env["COUNTERMAND_AGENT_CLUSTER_ID"]) if service == "agent" else service
            secret = volumes["record-signing-key"]["secret"]
            assert secret["secretName"] == f"countermand-signing-{signer}", name
            assert env["COUNTERMAND_SIGNING_KEY_FILE"] == f"{mounts['record-signing-key']}/records.pem", name
            assert env["COUNTERMAND_SIGNING_KEY_ID"] == f"{signer}-1", name
            seen_signers.add(service)
        else:
            assert "record-signing-key" not in volumes and "COUNTERMAND_SIGNING_KEY_FILE" not in env, name
        if service == "enforcement":
            agents = agent_key_set_file(Path(mounts["record-signing-public"]).parent)
            assert env["COUNTERMAND_ENFORCEMENT_AGENT_KEYS_FILE"] == f"{mounts['record-signing-public']}/{agents.name}"
        if service in TRUSTED_SIGNERS:
            assert volumes["record-signing-public"]["configMap"]["name"] == "countermand-signing-public", name
            _, public = key_files(Path(mounts["record-signing-public"]), TRUSTED_SIGNERS[service])
            assert env["COUNTERMAND_SIGNING_TRUSTED_KEYS_FILE"] == f"{mounts['record-signing-public']}/{public.name}"
            seen_verifiers.add(service)
    assert seen_signers == {*RECORD_SIGNERS, "agent"} and seen_verifiers == set(TRUSTED_SIGNERS)


def test_keygen_writes_what_the_manifests_mount(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    clusters = sorted(DEMO_CLUSTERS)
    done = CliRunner().invoke(app, ["signing", "keygen", str(tmp_path), *(f"--agent={c}" for c in clusters)])
    assert done.exit_code == 0, done.output
    agents = KeySet.from_file(agent_key_set_file(tmp_path))
    for cluster in clusters:
        private, _ = key_files(tmp_path, agent_signer(cluster))
        key = agents.get(f"{agent_signer(cluster)}-1")
        assert key.subject == cluster  # enforcement takes a key's acks for its own cluster only
        assert key.jwk()["x"] == Signer.from_pem("k", private).public().jwk()["x"]
    for service in RECORD_SIGNERS:
        private, public = key_files(tmp_path, service)
        signer = Signer.from_pem(f"{service}-1", private)
        assert private.stat().st_mode & 0o077 == 0
        assert KeySet.from_file(public).get(f"{service}-1").jwk() == signer.public().jwk()
    again = CliRunner().invoke(app, ["signing", "keygen", str(tmp_path)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    assert CliRunner().invoke(app, ["signing", "keygen", str(tmp_path), "--if-missing"]).exit_code == 0


def test_k8s_runs_two_intakes_each_under_its_own_stable_name_with_a_disruption_budget() -> None:
    """Two intakes are safe when each publishes under its own transactional id (its instance name); a StatefulSet
    keeps the pod name across restarts, so a restarted pod aborts its own unfinished transaction at once."""
    objects = k8s_objects()
    (intake,) = [o for o in objects if o["metadata"]["name"] == "intake" and o["kind"] in ("Deployment", "StatefulSet")]
    assert intake["kind"] == "StatefulSet" and intake["spec"]["replicas"] >= 2
    assert intake["spec"]["serviceName"] in {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    (container,) = [c for c in intake["spec"]["template"]["spec"]["containers"] if c["name"] == "intake"]
    instance = {e["name"]: e for e in container["env"]}["COUNTERMAND_INTAKE_INSTANCE"]
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    (budget,) = [o for o in objects if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "intake"]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == intake["spec"]["selector"]["matchLabels"]
    spread = intake["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert spread["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"]
