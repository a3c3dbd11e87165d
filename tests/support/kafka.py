"""Start and stop the test session's own Kafka broker (its own ports and data folder)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAFKALOCAL = ROOT / "deploy" / "kafka" / "kafkalocal.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestKafka:
    """A single-node KRaft broker in a fresh data folder on free loopback ports."""

    __test__ = False  # not a test class

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.controller_port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        subprocess.run([sys.executable, str(KAFKALOCAL), "up", "--data", str(self.data),
                        "--port", str(self.port), "--controller-port", str(self.controller_port)],
                       check=True, stdin=subprocess.DEVNULL)

    def __enter__(self) -> TestKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if (self.data / "kafka.pid").exists():
            subprocess.run([sys.executable, str(KAFKALOCAL), "down", "--data", str(self.data)],
                           check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def kafka_data_dir() -> Path:
    return Path(os.environ.get("COUNTERMAND_TEST_KAFKA_DIR", ROOT / ".run" / "test-kafka")).resolve()
