"""A stack that cannot start says why: the end of the log of what failed, not only its name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools.stack import Process, Stack


def _process(tmp_path: Path, name: str, code: str, lines: list[str]) -> Process:
    log = tmp_path / f"{name}.log"
    log.write_text("".join(f"{line}\n" for line in lines))
    popen = subprocess.Popen([sys.executable, "-c", code])
    return Process(name, popen, log)


def test_a_process_that_exits_is_named_with_the_end_of_its_log(tmp_path: Path) -> None:
    stack = Stack("127.0.0.1:1", tmp_path)
    early = [f"line {n}" for n in range(20)] + ["[Errno 98] address already in use"]
    stack.processes["audit"] = proc = _process(tmp_path, "audit", "raise SystemExit(3)", early)
    proc.popen.wait()
    with pytest.raises(RuntimeError) as failure:
        stack.wait_ready(5)
    message = str(failure.value)
    assert "audit exited with 3" in message and "address already in use" in message
    assert "line 19" in message and "line 0\n" not in message  # only the end of the log


def test_a_timeout_shows_the_end_of_every_log(tmp_path: Path) -> None:
    stack = Stack("127.0.0.1:1", tmp_path)
    stack.processes["agent-eu-west"] = _process(
        tmp_path, "agent", "import time; time.sleep(30)", ["waiting for a sync"]
    )
    stack.processes["enforcement"] = _process(tmp_path, "enforcement", "import time; time.sleep(30)", ["x" * 2_000])
    try:
        with pytest.raises(TimeoutError) as failure:
            stack.wait_ready(0.5)
    finally:
        for proc in stack.processes.values():
            proc.popen.kill()
            proc.popen.wait()
    message = str(failure.value)
    assert message.startswith("not ready after 0s: agent-eu-west, enforcement")
    assert "waiting for a sync" in message
    assert "x" * 300 in message and "x" * 301 not in message  # long lines are cut


def test_a_killed_process_is_restarted_with_its_command_and_environment(tmp_path: Path) -> None:
    stack = Stack("127.0.0.1:1", tmp_path)
    env = {"PATH": "/usr/bin:/bin", "COUNTERMAND_MARK": "kept"}
    first = stack.spawn("audit", "http.server", env, args=("--bind", "127.0.0.1", "0"))
    try:
        again = stack.kill_and_restart("audit")
        assert first.popen.returncode == -9  # SIGKILL, not a clean stop
        assert again.popen.pid != first.popen.pid and again.popen.poll() is None
        assert stack.processes["audit"] is again
        assert (again.module, again.env, again.args, again.log) == (first.module, env, first.args, first.log)
        assert again.popen.args == first.popen.args
    finally:
        stack.stop(timeout=5)
