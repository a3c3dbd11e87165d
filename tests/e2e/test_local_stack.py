"""`make up` / `make down` and the README's commands: the tour runs as written against a stack that stays up,
`down` leaves no process behind, and the audit commands work without settings once the stack has stopped.

The stack is `python -m cli.local_stack up` (what `make up` runs) with its own broker, in a temporary folder;
the README's commands run from a folder whose `.run/state` is that stack's state, as after `make run`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devtools import ROOT
from devtools.waiting import eventually_blocking

README = ROOT / "README.md"
USERS = 2000
COUNTERMAND = Path(sys.executable).parent / "countermand"


@dataclass
class Up:
    """A stack started by `cli.local_stack up`, and what it printed."""

    home: Path  # stands for the repository: .run/state is under it
    run_dir: Path
    printed: str

    @property
    def record(self) -> dict:
        return json.loads((self.run_dir / "stack.json").read_text())

    def local_stack(self, command: str) -> subprocess.CompletedProcess:
        args = [command, "--run-dir", str(self.run_dir), "--state-dir", str(self.home / ".run" / "state")]
        return _python("-m", "cli.local_stack", *args, "--users", str(USERS))


def _python(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env or _clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=400,
    )


def _clean_env() -> dict[str, str]:
    """This environment without any COUNTERMAND_* setting: a shell that has sourced nothing."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COUNTERMAND_")} | {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    home = tmp_path_factory.mktemp("home")
    stack = Up(home, home / ".run" / "up", "")
    started = stack.local_stack("up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        stack.printed = started.stdout
        yield stack
    finally:
        stack.local_stack("down")  # the second time for the test that stops it first: safe twice


def _block(marker: str) -> list[str]:
    """The lines of the README code block that follows `<!-- marker: ...`, comments stripped."""
    text = README.read_text()
    at = text.index(f"<!-- {marker}:")
    block = re.search(r"```bash\n(.*?)```", text[at:], re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def _pids(up: Up) -> list[int]:
    return [process["pid"] for process in up.record["processes"]]


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_up_starts_every_service_ready_and_prints_their_urls(up: Up) -> None:
    record = up.record
    names = {process["name"] for process in record["processes"]}
    assert names == {"intake", "impact", "enforcement", "notifier", "audit", "console"} | {
        f"agent-{c}" for c in ("us-east", "eu-west", "ap-south")
    }
    for process in record["processes"]:
        url = f"http://127.0.0.1:{process['http_port']}"
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200, process["name"]
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200, process["name"]
        assert url in up.printed and Path(process["log"]).is_file()
    for path in ("/healthz", "/readyz", "/metrics", "/directives/preview", "source ", "make down"):
        assert path in up.printed
    env = (up.run_dir / "env").read_text()
    assert f"COUNTERMAND_KAFKA_BOOTSTRAP={record['bootstrap']}" in env
    assert f"COUNTERMAND_AUDIT_STATE_DIR={up.home / '.run' / 'state'}" in env


def test_up_again_shows_the_running_stack_instead_of_starting_another(up: Up) -> None:
    pids = _pids(up)
    again = up.local_stack("up")
    assert again.returncode == 0 and "already up" in again.stdout
    assert _pids(up) == pids


def test_the_readme_tour_runs_as_written_against_the_stack(up: Up) -> None:
    commands = [line for line in _block("tour") if line.startswith("countermand ")]
    assert len(commands) >= 8, commands
    source = f"source {shlex.quote(str(up.run_dir / 'env'))}"
    for command in commands:

        def succeeds(command: str = command) -> subprocess.CompletedProcess | None:
            # the ledger and the status catch up with a directive within seconds: retried until then
            done = subprocess.run(
                ["bash", "-c", f"{source} && {command}"],
                cwd=ROOT,
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
            return done if done.returncode == 0 else None

        done = eventually_blocking(succeeds, f"`{command}` to succeed", timeout=90, interval=1)
        if command.startswith("countermand status EXP"):
            enforced = lambda c=command: "enforced" in getattr(succeeds(c), "stdout", "")  # noqa: E731
            eventually_blocking(enforced, f"{command} to show it enforced", timeout=90, interval=1)
        if command.startswith("countermand directive lift"):
            assert "proposed" in done.stdout  # four eyes: the next line's approval lifts it


def test_down_stops_every_process_up_started_and_is_safe_twice(up: Up) -> None:
    pids = _pids(up)
    broker = int((Path(up.record["kafka_data"]) / "kafka.pid").read_text())
    stopped = up.local_stack("down")
    assert stopped.returncode == 0, stopped.stderr
    assert [pid for pid in [*pids, broker] if not _gone(pid)] == []
    assert not (up.run_dir / "stack.json").exists()
    again = up.local_stack("down")
    assert again.returncode == 0 and "nothing to stop" in again.stdout


def test_the_readme_audit_commands_work_as_written_once_the_stack_has_stopped(up: Up) -> None:
    assert not (up.run_dir / "stack.json").exists(), "runs after the stack was stopped"
    for line in _block("after-run"):
        program, *args = shlex.split(line)
        assert program == ".venv/bin/countermand", line
        done = subprocess.run(
            [str(COUNTERMAND), *args],
            cwd=up.home,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
        assert any(word in done.stdout for word in ("EXP-2026-001", "DirectiveIssued", "chain intact")), line
