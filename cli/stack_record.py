"""What `make up` started, written down so that `make down` stops exactly that: the broker's data folder and
each service process (pid, which is also its process group, and the module it runs), with its HTTP port.

Processes are checked by pid and command line before they are signalled, so a pid reused by another
program after a reboot is left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILE = "stack.json"
PROC = Path("/proc")


@dataclass(frozen=True)
class Started:
    """One service process `make up` started."""

    name: str  # intake, ..., agent-us-east
    module: str  # services.<module>
    pid: int  # also its process group (started in a session of its own)
    http_port: int
    log: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def alive(self) -> bool:
        """Running, and still the service it was (not a zombie, not a reused pid)."""
        return _running(self.pid) and f"services.{self.module}" in _command_line(self.pid)


@dataclass
class StackRecord:
    """Everything `make up` started, in `run_dir/stack.json`."""

    run_dir: Path
    bootstrap: str = ""
    kafka_data: str = ""
    state_dir: str = ""
    processes: list[Started] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.run_dir / FILE

    def save(self) -> None:
        document = {key: value for key, value in asdict(self).items() if key != "run_dir"}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        temporary.replace(self.path)

    @classmethod
    def load(cls, run_dir: Path) -> StackRecord | None:
        """The record of a `make up` in run_dir, None when there is none."""
        path = run_dir / FILE
        if not path.exists():
            return None
        document = json.loads(path.read_text())
        processes = [Started(**process) for process in document.pop("processes", [])]
        return cls(run_dir, processes=processes, **document)

    def alive(self) -> list[Started]:
        return [process for process in self.processes if process.alive()]

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def stop_processes(processes: list[Started], timeout_s: float = 30.0) -> list[str]:
    """SIGTERM each live process's group, SIGKILL what is still running after timeout_s; the names stopped."""
    running = [process for process in processes if process.alive()]
    for process in running:
        _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(process.alive() for process in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in running:
        if process.alive():
            _signal_group(process.pid, signal.SIGKILL)
    return [process.name for process in running]


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _running(pid: int) -> bool:
    """The pid exists and is not a zombie (an orphan whose parent has not reaped it yet has exited)."""
    if not PROC.is_dir():
        return _ps(pid, "stat").strip()[:1] not in ("", "Z")
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _command_line(pid: int) -> str:
    if not PROC.is_dir():
        return _ps(pid, "command")
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ps(pid: int, column: str) -> str:
    """A column of `ps` for one pid (systems without /proc), empty when the pid does not exist."""
    done = subprocess.run(["ps", "-o", f"{column}=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return done.stdout
