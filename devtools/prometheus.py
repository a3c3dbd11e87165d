"""Debian's real Prometheus server (`make tools`) on loopback, scraping a running stack's /metrics (tests, demo).

The configuration is generated (one job per service, every 1 s), checked with `promtool check config`, and the
server keeps its TSDB in the folder given; `query` asks its HTTP API.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from devtools.ports import free_port
from devtools.processes import terminate


def binary(name: str) -> str:
    """The path of Debian's `prometheus` or `promtool`; a clear error when `make tools` was not run."""
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is missing: `make tools` installs Debian's prometheus package")
    return found


def scrape_config(targets: Mapping[str, str], interval_s: float = 1.0) -> dict[str, Any]:
    """A prometheus.yml scraping each service's /metrics: job = service name, target = host:port."""
    every = f"{int(interval_s * 1000)}ms"
    return {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
            for job, target in sorted(targets.items())
        ],
    }


@dataclass
class Prometheus:
    """A prometheus server of its own: config, TSDB and log under `folder`, on a free loopback port."""

    targets: Mapping[str, str]
    folder: Path
    interval_s: float = 1.0
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.folder / "prometheus.yml"

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(scrape_config(self.targets, self.interval_s), sort_keys=False))
        return self.config_file

    def check_config(self) -> str:
        """`promtool check config` on the generated file: its output; RuntimeError if it refuses it."""
        done = subprocess.run(
            [binary("promtool"), "check", "config", str(self.write_config())], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool refused {self.config_file}: {done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and wait until it answers /-/ready."""
        self.write_config()
        log = (self.folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}; see {self.folder}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready after {timeout_s:.0f}s; see {self.folder}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API: the result vector (each with `metric` labels and `value`)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        if answer.get("status") != "success":
            raise RuntimeError(f"prometheus refused {promql!r}: {answer}")
        return answer["data"]["result"]

    def targets_up(self) -> dict[str, bool]:
        """Job -> whether its last scrape succeeded."""
        return {r["metric"]["job"]: r["value"][1] == "1" for r in self.query("up")}

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, timeout_s=20)
            self.process = None

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
