"""Run a single-node Apache Kafka (KRaft) broker as a plain JVM process, without Docker.

Usage:
    python deploy/kafka/kafkalocal.py fetch
    python deploy/kafka/kafkalocal.py up   --data DIR [--port 9092] [--controller-port 9093]
                                           [--secrets DIR/secrets] [--user NAME ...]
    python deploy/kafka/kafkalocal.py up   --data DIR --port P1,P2,P3 --controller-port C1,C2,C3
                                           (a cluster: one combined broker+controller node per port,
                                            node N in DIR/node-N, replication 3, min.insync.replicas 2)
    python deploy/kafka/kafkalocal.py node --data DIR --node N --do kill|stop|pause|resume|start
    python deploy/kafka/kafkalocal.py leader --data DIR   (prints the active controller's node id)
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
from dataclasses import dataclass
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


def _properties(data: Path, port: int, controller_port: int, secrets: Secrets, cluster: Cluster | None = None) -> str:
    """One node's server.properties: a single node (cluster None) or node `cluster.node` of a cluster."""
    node, replicas, min_isr, quorum = 1, 1, 1, f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}"
    if cluster is not None:
        node, replicas, min_isr = cluster.node, cluster.size, cluster.min_insync
        quorum = "controller.quorum.voters=" + ",".join(
            f"{i}@127.0.0.1:{c}" for i, c in enumerate(cluster.controller_ports, start=1)
        )
    return f"""process.roles=broker,controller
node.id={node}
{quorum}
listeners=CLIENTS://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=CLIENTS://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
{secrets.server_properties()}log.dirs={data / "log"}
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=6
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=2097152
replica.fetch.max.bytes=2097152
log.retention.check.interval.ms=300000
"""


@dataclass(frozen=True)
class Cluster:
    """Node `node` (1-based) of a cluster of combined broker+controller nodes on these loopback ports."""

    node: int
    ports: tuple[int, ...]
    controller_ports: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.ports)

    @property
    def min_insync(self) -> int:
        return max(1, self.size - 1)


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


def _format(data: Path, props: Path, secrets: Secrets, cluster_id: str | None = None) -> None:
    """Format a node's storage once, with every principal's SCRAM credential. A single node formats itself as a
    standalone controller; a cluster's nodes share `cluster_id` and name their voters in the properties."""
    if (data / "log" / "meta.properties").exists():
        return  # users are created at format time only: a reused data folder keeps the ones it has
    cmd = [_java(), "-cp", f"{LIBS}/*", "kafka.tools.StorageTool", "format"]
    cmd += [f"--cluster-id={cluster_id}"] if cluster_id else ["--standalone", f"--cluster-id={_cluster_id()}"]
    cmd += ["-c", str(props), *secrets.format_options()]  # '=' form: an id may start with '-'
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


def up(
    data: Path, ports: list[int], controller_ports: list[int], timeout: float, secrets_dir: Path, users: list[str]
) -> None:
    """Start one node (one port) in DATA, or a cluster (several ports) with node N in DATA/node-N."""
    fetch()
    if len(ports) != len(controller_ports):
        sys.exit(f"kafka: {len(ports)} client port(s) but {len(controller_ports)} controller port(s)")
    data.mkdir(parents=True, exist_ok=True)
    secrets = Secrets(secrets_dir)
    secrets.ensure(users)
    if len(ports) == 1:
        _up_node(data, ports[0], controller_ports[0], timeout, secrets, None, None)
        return
    id_file = data / "cluster.id"
    if not id_file.exists():
        id_file.write_text(_cluster_id())
    cluster_id = id_file.read_text().strip()
    started = []
    for node, (port, controller_port) in enumerate(zip(ports, controller_ports, strict=True), start=1):
        cluster = Cluster(node, tuple(ports), tuple(controller_ports))
        started.append(_launch(data / f"node-{node}", port, controller_port, secrets, cluster, cluster_id))
    # A cluster answers once a quorum of its controllers has formed: wait for every node together.
    _await_ready(started, timeout, secrets, data)


def node(data: Path, number: int, action: str, timeout: float) -> None:
    """Act on node `number` of a cluster in DATA: kill (SIGKILL), stop (SIGTERM), pause (SIGSTOP), resume
    (SIGCONT) or start it again on its own data and ports."""
    folder = data / f"node-{number}"
    pidfile = folder / "kafka.pid"
    if action == "start":
        props = folder / "server.properties"
        if not props.exists():
            sys.exit(f"kafka: no node {number} in {data}")
        secrets = Secrets(_secrets_of(props))
        port = int(_property(props, "listeners").split("CLIENTS://127.0.0.1:")[1].split(",")[0])
        _await_ready([(_start_jvm(folder, props), folder, port)], timeout, secrets, data)
        return
    if not pidfile.exists() or not _alive(int(pidfile.read_text())):
        sys.exit(f"kafka: node {number} in {data} is not running")
    pid = int(pidfile.read_text())
    if action == "stop":
        _stop(folder)
        return
    os.kill(pid, {"kill": signal.SIGKILL, "pause": signal.SIGSTOP, "resume": signal.SIGCONT}[action])
    if action == "kill":
        pidfile.unlink(missing_ok=True)


def _up_node(
    data: Path,
    port: int,
    controller_port: int,
    timeout: float,
    secrets: Secrets,
    cluster: Cluster | None,
    cluster_id: str | None,
) -> None:
    pidfile = data / "kafka.pid"
    if pidfile.exists() and _alive(int(pidfile.read_text())) and _metadata_ok(port, secrets.ca_file):
        print(f"kafka: already running on 127.0.0.1:{port}")
        return
    _await_ready([_launch(data, port, controller_port, secrets, cluster, cluster_id)], timeout, secrets, data)


def _launch(
    data: Path, port: int, controller_port: int, secrets: Secrets, cluster: Cluster | None, cluster_id: str | None
) -> tuple[subprocess.Popen[bytes], Path, int]:
    data.mkdir(parents=True, exist_ok=True)
    props = data / "server.properties"
    props.write_text(_properties(data, port, controller_port, secrets, cluster))
    os.chmod(props, 0o600)  # it holds the admin password and the keystore's
    (data / "log4j2.properties").write_text(_LOG4J)
    _format(data, props, secrets, cluster_id)
    return _start_jvm(data, props), data, port


def _start_jvm(data: Path, props: Path) -> subprocess.Popen[bytes]:
    heap = "512m" if (data.parent / "cluster.id").exists() else "1g"  # three nodes share the machine
    cmd = [
        _java(),
        f"-Xmx{heap}",
        f"-Xms{heap}",
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
    (data / "kafka.pid").write_text(str(proc.pid))
    return proc


def _await_ready(
    nodes: list[tuple[subprocess.Popen[bytes], Path, int]], timeout: float, secrets: Secrets, data: Path
) -> None:
    started = time.monotonic()
    waiting = list(nodes)
    while waiting and time.monotonic() - started < timeout:
        for proc, folder, port in list(waiting):
            if proc.poll() is not None:
                down(data)
                sys.exit(f"kafka: broker exited with {proc.returncode}; see {folder / 'server.log'}")
            if _metadata_ok(port, secrets.ca_file):
                waiting.remove((proc, folder, port))
        if waiting:
            time.sleep(0.2)
    if waiting:
        down(data)
        sys.exit(f"kafka: not ready after {timeout:.0f}s; see {waiting[0][1] / 'server.log'}")
    ports = ",".join(f"127.0.0.1:{port}" for _, _, port in nodes)
    print(
        f"kafka: ready on {ports} (SASL_SSL) in {time.monotonic() - started:.1f}s; "
        f"client settings in {secrets.folder / 'env'}",
        flush=True,
    )


def leader(data: Path) -> int:
    """The node id of the cluster's active controller (the KRaft quorum leader), asked of its controllers."""
    props = sorted(data.glob("node-*/server.properties"))
    if not props:
        sys.exit(f"kafka: no cluster in {data}")
    admin_config = data / "controller-client.properties"
    jaas = _property(props[0], "listener.name.controller.plain.sasl.jaas.config").split(" user_")[0]
    admin_config.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config={jaas};\n")
    os.chmod(admin_config, 0o600)
    controllers = ",".join(_property(p, "listeners").split("CONTROLLER://")[1] for p in props)
    cmd = [_java(), "-cp", f"{LIBS}/*", "org.apache.kafka.tools.MetadataQuorumCommand"]
    cmd += ["--bootstrap-controller", controllers, "--command-config", str(admin_config), "describe", "--status"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    for line in out.splitlines():
        if line.startswith("LeaderId:"):
            return int(line.split(":", 1)[1])
    sys.exit(f"kafka: no quorum leader in {out!r}")


def _property(props: Path, name: str) -> str:
    for line in props.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise KeyError(name)


def _secrets_of(props: Path) -> Path:
    return Path(_property(props, "listener.name.clients.ssl.truststore.location")).parent


def down(data: Path, timeout: float = 30.0) -> None:
    """Stop the node in DATA, or every node of the cluster in DATA/node-*."""
    folders = [data, *sorted(data.glob("node-*"))]
    running = [f for f in folders if (f / "kafka.pid").exists()]
    if not running:
        print("kafka: not running")
        return
    for folder in running:
        _stop(folder, timeout)
    print("kafka: stopped")


def _stop(folder: Path, timeout: float = 30.0) -> None:
    pidfile = folder / "kafka.pid"
    pid = int(pidfile.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGCONT)  # a paused node cannot act on SIGTERM
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _ports(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["fetch", "up", "down", "secrets", "node", "leader"])
    parser.add_argument("--data", type=Path, default=Path(".run/kafka"))
    parser.add_argument("--port", type=_ports, default=[9092], help="client port, or one per node (P1,P2,P3)")
    parser.add_argument("--controller-port", type=_ports, default=[9093], help="controller port(s), as --port")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--secrets", type=Path, default=None, help="TLS material and passwords (default DATA/secrets)")
    parser.add_argument(
        "--user", action="append", default=[], help="a SCRAM user besides admin (repeat; default: the demo's)"
    )
    parser.add_argument("--compose", action="store_true", help="secrets: also write what docker-compose.yml reads")
    parser.add_argument("--node", type=int, default=1, help="node: which node of the cluster (1-based)")
    parser.add_argument("--do", choices=["kill", "stop", "pause", "resume", "start"], help="node: what to do")
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
    elif args.action == "node":
        if args.do is None:
            parser.error("node needs --do kill|stop|pause|resume|start")
        node(args.data.resolve(), args.node, args.do, args.timeout)
    elif args.action == "leader":
        print(leader(args.data.resolve()))
    else:
        down(args.data.resolve())


if __name__ == "__main__":
    main()
