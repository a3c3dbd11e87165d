"""TLS material and SCRAM passwords of a local broker, generated with keytool and the standard library.

A secrets folder holds, once generated (nothing there is ever committed; files are readable by the owner only):
    ca.p12, ca.pem        a CA made for this broker (ca.pem is what clients trust)
    broker.p12            the broker's key and certificate for 127.0.0.1 and localhost, signed by that CA
    credentials.json      the keystore password and one password per principal (SCRAM-SHA-512 user)
    env/<principal>.env   COUNTERMAND_KAFKA_* settings of a client that logs in as that principal
What is already there is kept (a data folder reused by `make kafka-up` keeps its users); what is missing is made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

ADMIN = "admin"  # the broker's own login and the super user; applies ACLs
MECHANISM = "SCRAM-SHA-512"
# The principals of shared.runtime.acls for the demo's clusters (a test keeps them equal): `make kafka-up`.
DEMO_USERS = (
    "tooling",
    "intake",
    "impact",
    "enforcement",
    "notifier",
    "audit",
    "console",
    "agent-us-east",
    "agent-eu-west",
    "agent-ap-south",
)
VALID_DAYS = 30
# keytool starts a JVM per call: the client compiler and serial GC halve the time of these short runs.
_FAST_JVM = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")


class Secrets:
    """The secrets folder of one broker."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    def credentials(self) -> dict:
        path = self.folder / "credentials.json"
        return json.loads(path.read_text()) if path.exists() else {"keystore_password": "", "users": {}}

    def passwords(self) -> dict[str, str]:
        return dict(self.credentials()["users"])

    def ensure(self, principals: list[str]) -> dict[str, str]:
        """Make what is missing: passwords for these principals (and admin), the CA and the broker certificate."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        credentials = self.credentials()
        credentials["keystore_password"] = credentials["keystore_password"] or secrets.token_hex(16)
        for name in [ADMIN, *principals]:
            credentials["users"].setdefault(name, secrets.token_hex(24))  # hex: safe in JAAS and --add-scram
        _write_private(self.folder / "credentials.json", json.dumps(credentials, indent=2) + "\n")
        if not self.keystore.exists():
            _make_tls(self.folder, credentials["keystore_password"])
        for name, password in credentials["users"].items():
            _write_private(self.folder / "env" / f"{name}.env", self.env_lines(name, password))
        return credentials["users"]

    def env_lines(self, principal: str, password: str) -> str:
        """A client's settings as an env file (no bootstrap: one secrets folder may serve brokers on other ports)."""
        return (
            "COUNTERMAND_KAFKA_SECURITY_PROTOCOL=SASL_SSL\n"
            f"COUNTERMAND_KAFKA_SASL_MECHANISM={MECHANISM}\n"
            f"COUNTERMAND_KAFKA_SASL_USERNAME={principal}\n"
            f"COUNTERMAND_KAFKA_SASL_PASSWORD={password}\n"
            f"COUNTERMAND_KAFKA_SSL_CAFILE={self.ca_file}\n"
        )

    def server_properties(self, listeners: tuple[str, ...] = ("CLIENTS",), at: Path | None = None) -> str:
        """Listener security of the broker: SASL_SSL (SCRAM) for the client listeners (the first one between
        brokers), SASL_PLAINTEXT (PLAIN, as admin) for the controller, the StandardAuthorizer with admin as the
        only super user and nothing allowed without an ACL. `at`: where the secrets folder is mounted."""
        credentials = self.credentials()
        admin, store = credentials["users"][ADMIN], credentials["keystore_password"]
        folder = at or self.folder
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        protocols = ",".join(f"{n}:SASL_SSL" for n in listeners)
        text = f"""listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,{protocols}
inter.broker.listener.name={listeners[0]}
sasl.mechanism.inter.broker.protocol={MECHANISM}
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain} required username="{ADMIN}" password="{admin}" \
user_{ADMIN}="{admin}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{ADMIN}
"""
        for name in (n.lower() for n in listeners):
            text += f"""listener.name.{name}.sasl.enabled.mechanisms={MECHANISM}
listener.name.{name}.{MECHANISM.lower()}.sasl.jaas.config={scram} required username="{ADMIN}" password="{admin}";
listener.name.{name}.ssl.keystore.type=PKCS12
listener.name.{name}.ssl.keystore.location={folder / self.keystore.name}
listener.name.{name}.ssl.keystore.password={store}
listener.name.{name}.ssl.key.password={store}
listener.name.{name}.ssl.truststore.type=PEM
listener.name.{name}.ssl.truststore.location={folder / self.ca_file.name}
"""
        return text

    def format_options(self) -> list[str]:
        """`kafka-storage format` options creating every principal's SCRAM credential."""
        return [
            f"--add-scram={MECHANISM}=[name={name},password={password}]" for name, password in self.passwords().items()
        ]


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(text)


def _keytool(*args: str) -> None:
    home = os.environ.get("JAVA_HOME")
    keytool = Path(home, "bin", "keytool") if home else shutil.which("keytool")
    if not keytool:
        sys.exit("kafka: no keytool on PATH (it comes with Java 17+)")
    done = subprocess.run([str(keytool), *_FAST_JVM, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"kafka: keytool {args[0]} failed: {done.stdout}{done.stderr}")


def _make_tls(folder: Path, password: str) -> None:
    """A CA, and a broker certificate for 127.0.0.1, localhost and kafka (compose) signed by it, in PKCS12."""
    ca, broker, request, signed = folder / "ca.p12", folder / "broker.p12", folder / "broker.csr", folder / "broker.pem"
    common = ("-storepass", password, "-storetype", "PKCS12", "-noprompt")
    key = ("-keyalg", "EC", "-groupname", "secp256r1", "-validity", str(VALID_DAYS))
    for path in (ca, broker):
        path.unlink(missing_ok=True)
    _keytool("-genkeypair", "-alias", "ca", *key, "-dname", "CN=countermand-local-ca", "-ext", "bc:c",
             "-keystore", str(ca), *common)  # fmt: skip
    _keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca), "-file", str(folder / "ca.pem"), *common)
    _keytool("-genkeypair", "-alias", "broker", *key, "-dname", "CN=localhost", "-keystore", str(broker), *common)
    _keytool("-certreq", "-alias", "broker", "-keystore", str(broker), "-file", str(request), *common)
    _keytool("-gencert", "-alias", "ca", "-keystore", str(ca), "-infile", str(request), "-outfile", str(signed),
             "-rfc", "-validity", str(VALID_DAYS), "-ext", "SAN=dns:localhost,ip:127.0.0.1,dns:kafka",
             "-ext", "ku:c=digitalSignature,keyEncipherment", "-ext", "eku=serverAuth", *common)  # fmt: skip
    _keytool("-importcert", "-alias", "ca", "-file", str(folder / "ca.pem"), "-keystore", str(broker), *common)
    _keytool("-importcert", "-alias", "broker", "-file", str(signed), "-keystore", str(broker), *common)
    for path in (ca, broker, request, signed, folder / "ca.pem"):
        os.chmod(path, 0o600)


COMPOSE_SECRETS = Path("/run/secrets")  # where docker-compose.yml mounts its secrets, one file each
COMPOSE_BOOTSTRAP = "kafka:19092"
# The secrets' names in docker-compose.yml -> the file each is made from.
COMPOSE_FILES = {
    "kafka-ca": "ca.pem",
    "kafka-keystore": "broker.p12",
    "kafka-server-properties": "compose/server.properties",
    "kafka-start": "compose/kafka-start.sh",
    "kafka-admin-properties": "compose/admin.properties",
}


def write_compose(secrets: Secrets) -> None:
    """What docker-compose.yml reads from the secrets folder (`make compose-secrets`): compose/<principal>.env per
    principal (the CA at its mount point), and the broker's start script, which formats the storage with every
    SCRAM user once and starts Kafka with the listener security of server_properties."""
    users = secrets.passwords()
    for name, password in users.items():
        lines = secrets.env_lines(name, password).replace(str(secrets.ca_file), str(COMPOSE_SECRETS / "kafka-ca"))
        _write_private(secrets.folder / "compose" / f"{name}.env", lines)
    properties = f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:29093
listeners=INTERNAL://:19092,HOST://:9092,CONTROLLER://:29093
advertised.listeners=INTERNAL://{COMPOSE_BOOTSTRAP},HOST://localhost:9092
controller.listener.names=CONTROLLER
{_compose_paths(secrets.server_properties(("INTERNAL", "HOST"), COMPOSE_SECRETS))}log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=2097152
"""
    _write_private(secrets.folder / "compose" / "server.properties", properties)
    scram = " ".join(f"'{option}'" for option in secrets.format_options())
    _write_private(
        secrets.folder / "compose" / "kafka-start.sh",
        f"""#!/bin/bash
# Generated by `make compose-secrets`: format once with every SCRAM user, then run the broker.
set -euo pipefail
props={COMPOSE_SECRETS}/kafka-server-properties
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  /opt/kafka/bin/kafka-storage.sh format --cluster-id=zkVZ3pA3SLSecYIncmqnng -c "$props" {scram}
fi
exec /opt/kafka/bin/kafka-server-start.sh "$props"
""",
    )
    admin = users[ADMIN]
    _write_private(
        secrets.folder / "compose" / "admin.properties",
        f"""security.protocol=SASL_SSL
sasl.mechanism={MECHANISM}
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" password="{admin}";
ssl.truststore.type=PEM
ssl.truststore.location={COMPOSE_SECRETS / "kafka-ca"}
""",
    )
    # Containers run as their own users and compose mounts secrets as they are: readable files in a folder only
    # its owner can enter.
    for name in COMPOSE_FILES.values():
        os.chmod(secrets.folder / name, 0o644)
    for env in (secrets.folder / "compose").glob("*.env"):
        os.chmod(env, 0o644)


def _compose_paths(properties: str) -> str:
    for secret, name in COMPOSE_FILES.items():
        properties = properties.replace(str(COMPOSE_SECRETS / name), str(COMPOSE_SECRETS / secret))
    return properties
