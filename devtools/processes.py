"""Stopping the processes tests, the demo and benchmarks start (services, brokers)."""

from __future__ import annotations

import os
import signal
import subprocess


def terminate(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM a process that still runs and wait; SIGKILL it if it has not exited within timeout_s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def signal_group(process: subprocess.Popen, sig: int) -> None:
    """Send a signal to the process group a process leads (started with start_new_session); gone is fine."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
