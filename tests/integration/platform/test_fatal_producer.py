"""A service whose Kafka producer fails for good does not stay half alive: it logs why, stops as on SIGTERM and
exits with producer_watch.EXIT_CODE, so its orchestrator restarts it (on the real broker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from devtools.broker import ROOT, KafkaAccess
from shared.runtime.producer_watch import EXIT_CODE


def test_a_fatal_producer_error_stops_the_service_with_its_exit_code(bootstrap: str, kafka_access: KafkaAccess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERMAND_")}
    env |= kafka_access.env() | {"COUNTERMAND_KAFKA_BOOTSTRAP": bootstrap, "COUNTERMAND_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.platform.fatal_service"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the service did not stop by itself; it logged:\n{(out + err)[-4000:]}") from None
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    lines = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line.startswith("{")]
    events = [line.get("event") for line in lines]
    assert done.returncode == EXIT_CODE, (done.returncode, done.stderr[-2000:])
    assert "service ready" in events
    fatal = next(line for line in lines if line.get("event", "").startswith("Kafka producer failed for good"))
    assert fatal["error"] == "OutOfOrderSequenceNumber"
    assert fatal["producer"] == "fatal-test broker"
    assert events.index("service stopped") > events.index(fatal["event"])  # it stopped as on SIGTERM
