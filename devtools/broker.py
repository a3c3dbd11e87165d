"""Local Kafka (KRaft) for tests, the demo and benchmarks, secured as production is: one node or a cluster.

Wraps deploy/kafka/kafkalocal.py, which stays standard-library only so that `make kafka-up` works on a
fresh clone before any virtualenv exists; this is the one way Python code starts and stops a broker. The
broker takes SASL_SSL (SCRAM-SHA-512) only; `start()` also applies the ACLs of shared.runtime.acls, so each
principal can do exactly what its role needs. `access` hands out each principal's client settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import ROOT
from devtools.ports import free_port
from shared.runtime.acl_requests import apply_acls
from shared.runtime.acls import ADMIN, TOOLING, bindings, principals
from shared.runtime.settings import KafkaSettings

KAFKALOCAL = ROOT / "deploy" / "kafka" / "kafkalocal.py"
DEMO_AGENTS = ("us-east", "eu-west", "ap-south")  # devtools.stack.DEMO_CLUSTERS (a test keeps them equal)


@dataclass(frozen=True)
class KafkaAccess:
    """How a client reaches a local broker: its bootstrap, the CA to trust and every principal's password."""

    bootstrap: str
    ca_file: Path
    passwords: Mapping[str, str]

    @classmethod
    def load(cls, secrets: Path, bootstrap: str) -> KafkaAccess:
        users = json.loads((secrets / "credentials.json").read_text())["users"]
        return cls(bootstrap, secrets / "ca.pem", users)

    def env(self, principal: str = TOOLING) -> dict[str, str]:
        """The COUNTERMAND_KAFKA_* variables of a process logging in as `principal`."""
        if principal not in self.passwords:
            raise KeyError(f"no Kafka principal {principal!r} on this broker (it has {sorted(self.passwords)})")
        return {
            "COUNTERMAND_KAFKA_BOOTSTRAP": self.bootstrap,
            "COUNTERMAND_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "COUNTERMAND_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "COUNTERMAND_KAFKA_SASL_USERNAME": principal,
            "COUNTERMAND_KAFKA_SASL_PASSWORD": self.passwords[principal],
            "COUNTERMAND_KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def export(self, principal: str = TOOLING) -> None:
        """Log this process (and the processes it starts with its environment) in as `principal`: its
        COUNTERMAND_KAFKA_* login, without the bootstrap (a script's own code names that)."""
        os.environ.update({k: v for k, v in self.env(principal).items() if k != "COUNTERMAND_KAFKA_BOOTSTRAP"})

    def settings(self, principal: str = TOOLING, **overrides: Any) -> KafkaSettings:
        """Client settings of `principal` (other settings from the environment, as for any process)."""
        env = self.env(principal)
        fields = {k.removeprefix("COUNTERMAND_KAFKA_").lower(): v for k, v in env.items()}
        return KafkaSettings(**{**fields, **overrides})


class LocalBroker:
    """A broker in its own data folder on its own loopback ports (free ones unless given).

    `start()` begins from an empty data folder; `stop()` is safe to call when nothing runs. Also a context
    manager: started on entry, stopped on exit whatever happens. TLS material and passwords live in `secrets`
    (default: inside the data folder, so made anew at each start); brokers given one folder share them.
    `agents`: the clusters whose agents get a principal (default: the demo's).
    """

    def __init__(
        self,
        data: Path,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        secrets: Path | None = None,
        agents: Iterable[str] = DEMO_AGENTS,
    ) -> None:
        self.data = Path(data).resolve()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.secrets = Path(secrets).resolve() if secrets else self.data / "secrets"
        self.agents = tuple(agents)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def access(self) -> KafkaAccess:
        return KafkaAccess.load(self.secrets, self.bootstrap)

    def start(self) -> None:
        """Start a fresh broker (any previous one in this folder is stopped and its data removed), with every
        principal's ACLs applied; returns once it answers."""
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        ports = self._port_options()
        _kafkalocal("up", "--data", str(self.data), *ports, "--secrets", str(self.secrets), *self._users())
        _run(apply_acls(self.access.settings(ADMIN), bindings(self.agents), principals(self.agents)))

    def _port_options(self) -> tuple[str, ...]:
        return ("--port", str(self.port), "--controller-port", str(self.controller_port))

    def resume(self) -> None:
        """Start the broker again on the data folder and ports it had (after stop()): its topics, offsets, users
        and ACLs are still there; returns once it answers."""
        ports = self._port_options()
        _kafkalocal("up", "--data", str(self.data), *ports, "--secrets", str(self.secrets), *self._users())

    def stop(self) -> None:
        """Stop the broker if it runs (SIGTERM, then SIGKILL after 30 s); keeps its data folder."""
        if (self.data / "kafka.pid").exists():
            _kafkalocal("down", "--data", str(self.data), check=False, quiet=True)

    def _users(self) -> list[str]:
        return [f"--user={name}" for name in principals(self.agents) if name != ADMIN]

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalCluster(LocalBroker):
    """Several combined broker+controller nodes (KRaft, static quorum) on loopback, in DATA/node-N.

    Started and secured as LocalBroker is; the nodes default to replication `nodes` and min.insync.replicas
    `nodes - 1`, so acks=all survives one node lost. Faults are injected per node (1-based): `kill` (SIGKILL),
    `freeze`/`thaw` (SIGSTOP/SIGCONT) and `restart` (on its own data, after a kill or stop).
    """

    def __init__(
        self, data: Path, nodes: int = 3, *, secrets: Path | None = None, agents: Iterable[str] = DEMO_AGENTS
    ) -> None:
        if nodes < 2:
            raise ValueError(f"a cluster has at least 2 nodes, not {nodes} (use LocalBroker for one)")
        super().__init__(data, secrets=secrets, agents=agents)
        self.ports = tuple(free_port() for _ in range(nodes))
        self.controller_ports = tuple(free_port() for _ in range(nodes))
        self.port, self.controller_port = self.ports[0], self.controller_ports[0]

    @property
    def nodes(self) -> int:
        return len(self.ports)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def _port_options(self) -> tuple[str, ...]:
        return (
            "--port",
            ",".join(map(str, self.ports)),
            "--controller-port",
            ",".join(map(str, self.controller_ports)),
        )

    def stop(self) -> None:
        if any((self.data / f"node-{n}" / "kafka.pid").exists() for n in range(1, self.nodes + 1)):
            _kafkalocal("down", "--data", str(self.data), check=False, quiet=True)

    def kill(self, node: int) -> None:
        """SIGKILL node `node` (its data is kept; `restart` brings it back)."""
        self._node(node, "kill")

    def freeze(self, node: int) -> None:
        """SIGSTOP node `node`: it holds its sockets but answers nothing until `thaw`."""
        self._node(node, "pause")

    def thaw(self, node: int) -> None:
        """SIGCONT node `node` after `freeze`."""
        self._node(node, "resume")

    def restart(self, node: int) -> None:
        """Start node `node` again on its own data and ports; returns once it answers."""
        self._node(node, "start")

    def active_controller(self) -> int:
        """The node id of the active controller (the KRaft quorum leader) now."""
        out = subprocess.run(
            [sys.executable, str(KAFKALOCAL), "leader", "--data", str(self.data)],
            check=True,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        return int(out.stdout.strip().splitlines()[-1])

    def pid(self, node: int) -> int | None:
        pidfile = self.data / f"node-{node}" / "kafka.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def _node(self, node: int, action: str) -> None:
        if not 1 <= node <= self.nodes:
            raise ValueError(f"no node {node}: the cluster has nodes 1 to {self.nodes}")
        _kafkalocal("node", "--data", str(self.data), f"--node={node}", f"--do={action}", quiet=True)


def make_secrets(folder: Path, agents: Iterable[str] = DEMO_AGENTS) -> KafkaAccess:
    """TLS material and passwords in `folder` for brokers started with `secrets=folder` (what is there is kept);
    the access has no bootstrap yet (each broker has its own)."""
    users = [f"--user={name}" for name in principals(agents) if name != ADMIN]
    _kafkalocal("secrets", "--secrets", str(folder), *users, quiet=True)
    return KafkaAccess.load(Path(folder).resolve(), "")


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to the end from sync code, also when the caller's thread runs an event loop."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="local-broker-acls")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _kafkalocal(*args: str, check: bool = True, quiet: bool = False) -> None:
    subprocess.run(
        [sys.executable, str(KAFKALOCAL), *args],
        check=check,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if quiet else None,
    )
