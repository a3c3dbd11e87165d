"""A local single-node Kafka (KRaft) broker for tests, the demo and benchmarks.

Wraps deploy/kafka/kafkalocal.py, which stays standard-library only so that `make kafka-up` works on a
fresh clone before any virtualenv exists; this is the one way Python code starts and stops a broker.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from devtools import ROOT
from devtools.ports import free_port

KAFKALOCAL = ROOT / "deploy" / "kafka" / "kafkalocal.py"


class LocalBroker:
    """A broker in its own data folder on its own loopback ports (free ones unless given).

    `start()` begins from an empty data folder; `stop()` is safe to call when nothing runs. Also a context
    manager: started on entry, stopped on exit whatever happens.
    """

    def __init__(self, data: Path, port: int | None = None, controller_port: int | None = None) -> None:
        self.data = Path(data).resolve()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start a fresh broker (any previous one in this folder is stopped and its data removed); returns
        once it answers a metadata request."""
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        _kafkalocal(
            "up", "--data", str(self.data), "--port", str(self.port), "--controller-port", str(self.controller_port)
        )

    def stop(self) -> None:
        """Stop the broker if it runs (SIGTERM, then SIGKILL after 30 s); keeps its data folder."""
        if (self.data / "kafka.pid").exists():
            _kafkalocal("down", "--data", str(self.data), check=False, quiet=True)

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fetch_jars() -> None:
    """Download the broker jars from Maven Central once (cached under deploy/kafka/libs)."""
    _kafkalocal("fetch")


def _kafkalocal(*args: str, check: bool = True, quiet: bool = False) -> None:
    subprocess.run(
        [sys.executable, str(KAFKALOCAL), *args],
        check=check,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if quiet else None,
    )
