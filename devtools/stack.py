"""Start and stop Countermand's services as separate processes (demo, end-to-end tests, benchmarks).

Each service runs as `python -m services.<name>` in its own process group, logs JSON to its own
file and keeps its state in its own folder, exactly as it would be deployed: given the broker's access,
each logs in to Kafka as its own principal (agents: agent-<cluster>). `start()` runs the whole stack;
`spawn()` runs one process of a partial stack (a benchmark's enforcement and agents).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools import ROOT
from devtools.broker import KafkaAccess
from devtools.mailbox import Mailbox
from devtools.ports import free_port
from devtools.processes import signal_group
from shared.contracts.catalogue import ACKS, COMMANDS, DIRECTIVES, IMPACT, SETS
from shared.runtime.auth import API_KEY_HEADER, LocalIssuer, Role, create_local_identities, local_environment
from shared.runtime.record_signing import RECORD_SIGNERS, TRUSTED_SIGNERS, key_files, make_record_key
from shared.runtime.signing import KeySet, Signer

CORE_SERVICES = ("intake", "impact", "enforcement", "notifier", "audit")
AUDIT_KEY_ID = "audit-dev"
SIGNERS = RECORD_SIGNERS  # who signs the records others act on
TRUSTS = TRUSTED_SIGNERS  # whose records each acts on
SIGNED_TOPICS = {  # checked by the audit
    DIRECTIVES.name: "intake",
    IMPACT.name: "impact",
    COMMANDS.name: "enforcement",
    SETS.name: "enforcement",
}


@dataclass(frozen=True)
class Cluster:
    """A serving cluster whose agent the stack runs."""

    cluster_id: str
    region: str
    models: tuple[str, ...]


DEMO_CLUSTERS = (
    Cluster("us-east", "us-east-1", ("fable-5", "mythos-5", "lyric-4")),
    Cluster("eu-west", "eu-west-1", ("fable-5", "mythos-5")),
    Cluster("ap-south", "ap-south-1", ("fable-5", "lyric-4")),
)


TAIL_LINES = 8
TAIL_WIDTH = 300


@dataclass
class Process:
    """One running service process."""

    name: str
    popen: subprocess.Popen
    log: Path
    http_port: int | None = None
    module: str = ""
    env: dict[str, str] = field(default_factory=dict)  # exactly what it was started with (a restart reuses it)
    args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of its log, each cut to a readable width (for a failure message)."""
        try:
            last = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            return f"  (log unreadable: {exc})"
        return "\n".join(f"  {line[:TAIL_WIDTH]}" for line in last) or "  (log empty)"


@dataclass
class Stack:
    """Every service of Countermand, started against one Kafka bootstrap."""

    bootstrap: str
    run_dir: Path
    clusters: tuple[Cluster, ...] = DEMO_CLUSTERS
    extra_env: dict[str, str] = field(default_factory=dict)  # for every process (e.g. a log level)
    console: bool = False  # also run the web console (after the services it calls)
    processes: dict[str, Process] = field(default_factory=dict)
    access: KafkaAccess | None = None  # the broker's principals (None: a PLAINTEXT broker, no identities)
    _identities: tuple[LocalIssuer, str] | None = None

    @property
    def auth_dir(self) -> Path:
        return self.run_dir / "auth"

    @property
    def issuer(self) -> LocalIssuer:
        """The stack's own token issuer: every service trusts it (and only it)."""
        if self._identities is None:
            self._identities = create_local_identities(self.auth_dir)
        return self._identities[0]

    def token(self, subject: str, *roles: Role) -> dict[str, str]:
        """Headers calling a service as `subject` with these roles."""
        return {"Authorization": f"Bearer {self.issuer.mint(subject, roles)}"}

    @property
    def gateway(self) -> dict[str, str]:
        """Headers calling an agent's access checks as a gateway (its API key)."""
        self.issuer  # noqa: B018 (creates the identities on first use)
        assert self._identities is not None
        return {API_KEY_HEADER: self._identities[1]}

    def issue(self, body: dict, proposer: str = "alice", approver: str = "bob") -> tuple[dict, dict]:
        """Four eyes through intake's API: `proposer` proposes the directive (or amendment), `approver` approves
        it; (the proposal's answer, the approval's answer: the directive issued)."""
        proposed = self._intake("POST", "/directives", self.token(proposer, Role.PROPOSER), json=body)
        return proposed, self.approve(proposed["proposal_id"], approver)

    def lift(self, directive_id: str, reason: str, proposer: str = "alice", approver: str = "bob") -> tuple[dict, dict]:
        """Four eyes for a lift: proposed by `proposer`, approved by `approver`; both answers."""
        path = f"/directives/{directive_id}/lift"
        proposed = self._intake("POST", path, self.token(proposer, Role.PROPOSER), json={"reason": reason})
        return proposed, self.approve(proposed["proposal_id"], approver)

    def approve(self, proposal_id: str, approver: str) -> dict:
        return self._intake("POST", f"/proposals/{proposal_id}/approve", self.token(approver, Role.APPROVER), json={})

    def _intake(self, method: str, path: str, headers: dict[str, str], **kwargs: object) -> dict:
        reply = httpx.request(method, f"{self.intake.url}{path}", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]
        if reply.is_error:
            raise RuntimeError(f"intake refused {method} {path}: {reply.status_code} {reply.text[:500]}")
        return reply.json()

    mailbox: Mailbox | None = None  # the SMTP server the notifier sends to (started with the stack)

    # One state folder for every service, as their defaults share `.run/state` (each keeps a subfolder of
    # its own): what `make run` and `make up` use, so the CLI's defaults (the audit ledger) find their state.
    # None: a folder per process under run_dir/state (tests, benchmarks).
    state_root: Path | None = None

    def state_dir(self, name: str) -> Path:
        return self.state_root if self.state_root is not None else self.run_dir / "state" / name

    @property
    def intake(self) -> Process:
        return self.processes["intake"]

    def agent(self, cluster_id: str) -> Process:
        return self.processes[f"agent-{cluster_id}"]

    @property
    def impact(self) -> Process:
        return self.processes["impact"]

    def service(self, name: str) -> Process:
        """A running service by name (agents: agent-<cluster>)."""
        return self.processes[name]

    @property
    def mail_log(self) -> Path:
        """Every message the stack's SMTP server received, one JSON line each."""
        return self.run_dir / "mailbox.jsonl"

    @property
    def ledger(self) -> Path:
        return self.state_dir("audit") / "audit" / "ledger.sqlite"

    def start(self, timeout: float = 90.0) -> None:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.mailbox = self.mailbox or Mailbox(self.mail_log)
        self.mailbox.start()
        for name in CORE_SERVICES:
            self.spawn(name, name, self._env(name), mode="ab")
        for cluster in self.clusters:
            self.spawn(f"agent-{cluster.cluster_id}", "agent", self._agent_env(cluster), mode="ab")
        if self.console:
            self.spawn("console", "console", self.console_env(), mode="ab")
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()  # a stack that failed to start leaves nothing running
            raise

    def base_env(self, principal: str = "tooling") -> dict[str, str]:
        """What every process gets: this environment without its COUNTERMAND_* settings, then the stack's, with
        the Kafka login of `principal` (a service's name, agent-<cluster> for an agent)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERMAND_")}
        if self.access is not None:
            env.update(self.access.env(principal))
        env.update(
            {
                "COUNTERMAND_KAFKA_BOOTSTRAP": self.bootstrap,
                "COUNTERMAND_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
                **local_environment(self.auth_dir, self.issuer),
                **self.extra_env,
            }
        )
        return env

    def service_env(self, name: str) -> dict[str, str]:
        """A core service's environment as `start()` gives it: its Kafka login, state folder, HTTP port, signing
        (a partial stack spawns it with this)."""
        return self._env(name)

    def _env(self, name: str, principal: str | None = None, cluster: str | None = None) -> dict[str, str]:
        env = self.base_env(principal or name)
        prefix = f"COUNTERMAND_{name.upper()}_"
        env[f"{prefix}STATE_DIR"] = str(self.state_dir(name))
        env[f"{prefix}HTTP_PORT"] = str(free_port())  # every service answers /readyz (health, or its API)
        if name == "audit":
            env[f"{prefix}SIGNING_KEY_FILE"] = str(self.audit_key())
            env[f"{prefix}SIGNING_KEY_ID"] = AUDIT_KEY_ID
            env[f"{prefix}RECORD_KEYS"] = json.dumps(self.record_key_sets())
        if name == "notifier" and self.mailbox is not None:
            env[f"{prefix}EMAIL_CHANNEL"] = "smtp"
            env[f"{prefix}SMTP_HOST"] = "127.0.0.1"
            env[f"{prefix}SMTP_PORT"] = str(self.mailbox.port)
            env[f"{prefix}SMTP_SENDER"] = "notices@countermand.test"
        env.update(self.signing_env(name, cluster=cluster))
        return env

    def signing_env(
        self, name: str, *, cluster: str | None = None, clusters: Iterable[str] | None = None
    ) -> dict[str, str]:
        """Record signing of one process: the key it signs with, and the one whose records it acts on (intake's
        directives for impact, impact's assessments for enforcement, enforcement's commands for agents). An
        agent signs its acks and heartbeats with its `cluster`'s key; enforcement trusts those of `clusters`
        (default: the stack's)."""
        env = {"COUNTERMAND_SIGNING_MODE": "on"}
        if name in TRUSTS:
            env["COUNTERMAND_SIGNING_TRUSTED_KEYS_FILE"] = str(self.record_keys(TRUSTS[name]))
        signs_as = name if name in SIGNERS else f"agent-{cluster}" if name == "agent" else None
        if name == "agent" and cluster is None:
            raise ValueError("an agent signs as its cluster: pass cluster=")
        if signs_as is not None:
            env["COUNTERMAND_SIGNING_KEY_FILE"] = str(self.record_key(signs_as))
            env["COUNTERMAND_SIGNING_KEY_ID"] = f"{signs_as}-dev"
        if name == "enforcement":
            ids = [c.cluster_id for c in self.clusters] if clusters is None else list(clusters)
            env["COUNTERMAND_ENFORCEMENT_AGENT_KEYS_FILE"] = str(self.agent_keys(ids))
        return env

    def agent_keys(self, clusters: Iterable[str]) -> Path:
        """The public JWK set of these clusters' agent keys, each naming its cluster (`sub`)."""
        path = self.run_dir / "keys" / "agents-records.jwks.json"
        keys = [self.record_signer(f"agent-{c}").public(subject=c) for c in clusters]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(KeySet(keys).to_json())
        return path

    def record_key_sets(self) -> dict[str, str]:
        """The audit's record signature checks: each signed topic and the JWK set of the service that signs it;
        acks and heartbeats, the agents' set enforcement trusts (each key naming its cluster)."""
        sets = {topic: str(self.record_keys(name)) for topic, name in SIGNED_TOPICS.items()}
        sets[ACKS.name] = str(self.agent_keys(c.cluster_id for c in self.clusters))
        return sets

    def record_keys(self, name: str) -> Path:
        """The public JWK set of `name`'s record signing key."""
        self.record_key(name)
        return key_files(self.run_dir / "keys", name)[1]

    def record_key(self, name: str) -> Path:
        """The Ed25519 key (PEM) `name` signs its records with, made once per run folder (as `countermand signing
        keygen` makes them for compose and Kubernetes), its JWK set beside it."""
        make_record_key(self.run_dir / "keys", name, f"{name}-dev")
        return key_files(self.run_dir / "keys", name)[0]

    def record_signer(self, name: str) -> Signer:
        """`name`'s record signer, as the process has it (tests sign with it: a validly signed wrong command)."""
        return Signer.from_pem(f"{name}-dev", self.record_key(name))

    @property
    def audit_keys(self) -> Path:
        """The public JWK set of the audit's tree-head signing key (for `countermand audit ... --keys`)."""
        return self.run_dir / "keys" / "audit.jwks.json"

    def audit_key(self) -> Path:
        """The audit's Ed25519 signing key (PEM), made once per run folder, its public JWK set beside it."""
        path = self.run_dir / "keys" / "audit.pem"
        if not path.exists():
            signer = Signer.generate(AUDIT_KEY_ID)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(signer.pem())
            path.chmod(0o600)
            self.audit_keys.write_text(KeySet([signer.public()]).to_json())
        return path

    def console_env(self) -> dict[str, str]:
        """The console's environment: its own Kafka principal, and the intake, impact and audit it calls."""
        env = self._env("console")
        env["COUNTERMAND_CONSOLE_INTAKE_URL"] = self.intake.url
        env["COUNTERMAND_CONSOLE_IMPACT_URL"] = self.impact.url
        env["COUNTERMAND_CONSOLE_AUDIT_URL"] = self.service("audit").url
        env["COUNTERMAND_CONSOLE_BROKER_CHECK_INTERVAL_S"] = "1"
        return env

    def _agent_env(self, cluster: Cluster) -> dict[str, str]:
        env = self._env("agent", f"agent-{cluster.cluster_id}", cluster.cluster_id)
        env.update(
            {
                "COUNTERMAND_AGENT_STATE_DIR": str(self.state_dir(f"agent-{cluster.cluster_id}")),
                "COUNTERMAND_AGENT_CLUSTER_ID": cluster.cluster_id,
                "COUNTERMAND_AGENT_REGION": cluster.region,
                "COUNTERMAND_AGENT_MODELS": ",".join(cluster.models),
                "COUNTERMAND_AGENT_HTTP_PORT": str(free_port()),
            }
        )
        return env

    def spawn(
        self, name: str, module: str, env: dict[str, str], *, mode: str = "wb", args: Sequence[str] = ()
    ) -> Process:
        """Start `python -m services.<module>` (or a dotted module, such as devtools.agent_pool, with `args`) as
        `name` with exactly this environment (see base_env), its output in run_dir/logs/<name>.log; not waited for."""
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        log = self.run_dir / "logs" / f"{name}.log"
        with open(log, mode) as out:  # the child holds its own copy of the descriptor
            popen = subprocess.Popen(
                [sys.executable, "-m", module if "." in module else f"services.{module}", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        port = next((int(v) for k, v in env.items() if k.endswith("_HTTP_PORT") and v != "0"), None)
        self.processes[name] = Process(name, popen, log, port, module, dict(env), tuple(args))
        return self.processes[name]

    def kill_and_restart(self, name: str) -> Process:
        """SIGKILL of a started process's group, then the same command with the same environment (its state folder,
        its port), as an orchestrator restarts a container; not waited for (see wait_ready)."""
        proc = self.processes[name]
        signal_group(proc.popen, signal.SIGKILL)
        proc.popen.wait()
        return self.spawn(name, proc.module, proc.env, mode="ab", args=proc.args)

    def check_alive(self) -> None:
        """RuntimeError naming every started process that has exited."""
        dead = [name for name, proc in self.processes.items() if proc.popen.poll() is not None]
        if dead:
            raise RuntimeError(f"exited early: {', '.join(dead)} (logs under {self.run_dir / 'logs'})")

    def stop_one(self, name: str, timeout: float = 20.0) -> None:
        """Stop one started process (SIGTERM to its group, SIGKILL after `timeout`)."""
        proc = self.processes.pop(name)
        signal_group(proc.popen, signal.SIGTERM)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc.popen, signal.SIGKILL)
            proc.popen.wait()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.processes)
        while pending:
            for name in list(pending):
                proc = self.processes[name]
                if proc.popen.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.popen.returncode}; see {proc.log}, which ends:\n{proc.tail()}"
                    )
                if self._ready(proc):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                ends = "\n".join(
                    f"{name} ({self.processes[name].log}) ends:\n{self.processes[name].tail()}"
                    for name in sorted(self.processes)
                )
                raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}\n{ends}")
            time.sleep(0.2)

    @staticmethod
    def _ready(proc: Process) -> bool:
        if proc.http_port is not None:
            try:
                return httpx.get(f"{proc.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        return any(_is_ready_line(line) for line in proc.log.read_text(errors="replace").splitlines())

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.processes.values():
            signal_group(proc.popen, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(proc.popen, signal.SIGKILL)
                proc.popen.wait()
        self.processes.clear()
        if self.mailbox is not None:
            self.mailbox.stop()


def _is_ready_line(line: str) -> bool:
    try:
        return json.loads(line).get("event") == "service ready"
    except (ValueError, AttributeError):
        return False
