"""Stopping the service processes tests and benchmarks start."""

from __future__ import annotations

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
