"""Run a single-node Apache Kafka (KRaft) broker as a plain JVM process, without Docker.

Usage:
    python deploy/kafka/kafkalocal.py fetch
    python deploy/kafka/kafkalocal.py up   --data DIR [--port 9092] [--controller-port 9093]
                                           [--secrets DIR/secrets] [--user NAME ...]
    python deploy/kafka/kafkalocal.py down --data DIR
    python deploy/kafka/kafkalocal.py secrets --secrets DIR [--user NAME ...] [--compose]
                                           (only makes what is missing; --compose: docker-compose.yml's too)

`up` makes the TLS material and passwords that are missing (kafkasecurity.py), formats the data folder
on first use with one SCRAM user per principal, starts the broker in the background, waits until it
answers an ApiVersions request over TLS, and writes its pid to DIR/kafka.pid. Clients connect with
SASL_SSL (SCRAM-SHA-512); the KRaft StandardAuthorizer allows nothing without an ACL (`countermand acls
apply`). `down` stops it with SIGTERM and waits. Jars come from Maven Central through
deploy/kafka/pom.xml into deploy/kafka/libs (cached). Only the standard library is used, so this runs
before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kafkasecurity import DEMO_USERS, Secrets, write_compose

HERE = Path(__file__).resolve().parent
LIBS = HERE / "libs"
MARKER = LIBS / ".complete"


def fetch() -> None:
    """Download the broker jars once; a marker file records a complete download."""
    if MARKER.exists():
        return
    if shutil.which("mvn") is None:
        sys.exit("kafka: Maven (mvn) is needed to fetch the Kafka jars from Maven Central")
    if LIBS.exists():
        shutil.rmtree(LIBS)
    print("kafka: fetching Apache Kafka jars from Maven Central (once)...", flush=True)
    subprocess.run(["mvn", "-B", "-q", "package"], cwd=HERE, check=True, stdin=subprocess.DEVNULL)
    MARKER.write_text("ok\n")


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = Path(home, "bin", "java") if home else shutil.which("java")
    if not java:
        sys.exit("kafka: no java on PATH (Java 17+ is needed)")
    return str(java)


def _properties(data: Path, port: int, controller_port: int, secrets: Secrets) -> str:
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=CLIENTS://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=CLIENTS://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
{secrets.server_properties()}log.dirs={data / "log"}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=2097152
log.retention.check.interval.ms=300000
"""


_LOG4J = """status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def _cluster_id() -> str:
    """A cluster id as Kafka writes them: a random UUID, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _format(data: Path, props: Path, secrets: Secrets) -> None:
    if (data / "log" / "meta.properties").exists():
        return  # users are created at format time only: a reused data folder keeps the ones it has
    cmd = [
        _java(),
        "-cp",
        f"{LIBS}/*",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        f"--cluster-id={_cluster_id()}",
        "-c",
        str(props),
        *secrets.format_options(),
    ]  # '=' form: an id may start with '-'
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def _metadata_ok(port: int, ca_file: Path) -> bool:
    """Send a Kafka ApiVersions request (v0, answered before SASL authentication) over TLS, checking the broker's
    certificate against the CA, and check for a well-formed answer."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            client = b"probe"
            body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", sock.recv(4))[0]
            reply = b""
            while len(reply) < size:
                part = sock.recv(size - len(reply))
                if not part:
                    return False
                reply += part
            corr, error = struct.unpack(">ih", reply[:6])
            return corr == 1 and error == 0
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def up(data: Path, port: int, controller_port: int, timeout: float, secrets_dir: Path, users: list[str]) -> None:
    fetch()
    data.mkdir(parents=True, exist_ok=True)
    secrets = Secrets(secrets_dir)
    pidfile = data / "kafka.pid"
    if pidfile.exists() and _alive(int(pidfile.read_text())) and _metadata_ok(port, secrets.ca_file):
        print(f"kafka: already running on 127.0.0.1:{port}")
        return
    secrets.ensure(users)
    props = data / "server.properties"
    props.write_text(_properties(data, port, controller_port, secrets))
    os.chmod(props, 0o600)  # it holds the admin password and the keystore's
    (data / "log4j2.properties").write_text(_LOG4J)
    _format(data, props, secrets)
    started = time.monotonic()
    cmd = [
        _java(),
        "-Xmx1g",
        "-Xms1g",
        "-XX:+UseG1GC",
        "-XX:G1HeapRegionSize=16m",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={data}",
        f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}",
        "-cp",
        f"{LIBS}/*",
        "kafka.Kafka",
        str(props),
    ]
    with open(data / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    pidfile.write_text(str(proc.pid))
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            sys.exit(f"kafka: broker exited with {proc.returncode}; see {data / 'server.log'}")
        if _metadata_ok(port, secrets.ca_file):
            print(
                f"kafka: ready on 127.0.0.1:{port} (SASL_SSL) in {time.monotonic() - started:.1f}s; "
                f"client settings in {secrets.folder / 'env'}",
                flush=True,
            )
            return
        time.sleep(0.2)
    down(data)
    sys.exit(f"kafka: not ready after {timeout:.0f}s; see {data / 'server.log'}")


def down(data: Path, timeout: float = 30.0) -> None:
    pidfile = data / "kafka.pid"
    if not pidfile.exists():
        print("kafka: not running")
        return
    pid = int(pidfile.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    print("kafka: stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["fetch", "up", "down", "secrets"])
    parser.add_argument("--data", type=Path, default=Path(".run/kafka"))
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--secrets", type=Path, default=None, help="TLS material and passwords (default DATA/secrets)")
    parser.add_argument(
        "--user", action="append", default=[], help="a SCRAM user besides admin (repeat; default: the demo's)"
    )
    parser.add_argument("--compose", action="store_true", help="secrets: also write what docker-compose.yml reads")
    args = parser.parse_args(argv)
    args.user = args.user or list(DEMO_USERS)
    if args.action == "fetch":
        fetch()
    elif args.action == "secrets":
        secrets = Secrets((args.secrets or args.data / "secrets").resolve())
        secrets.ensure(args.user)
        if args.compose:
            write_compose(secrets)
    elif args.action == "up":
        data = args.data.resolve()
        secrets = (args.secrets or data / "secrets").resolve()
        up(data, args.port, args.controller_port, args.timeout, secrets, args.user)
    else:
        down(args.data.resolve())


if __name__ == "__main__":
    main()
