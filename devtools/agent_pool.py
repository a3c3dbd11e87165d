"""Several serving clusters' agents in one process and one event loop, for benchmarks that run more agents than
the machine has cores: `python -m devtools.agent_pool SPEC.json`, SPEC a JSON list of each agent's environment.

Each agent is built by the agent's own composition root from its own settings (cluster id, Kafka principal,
signing key, state folder, HTTP port), exactly as `python -m services.agent` builds it from that environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.agent.app import SERVICE, Agent, build
from services.agent.settings import AgentSettings
from shared.runtime.logging import configure_logging
from shared.runtime.service import event_loop_factory, settle_heap


def settings_of(env: Mapping[str, str]) -> AgentSettings:
    """An agent's settings as its own process would read them from `env` (and nothing else)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return AgentSettings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def serve(agents: list[Agent], log: Any) -> None:
    """Start every agent, log one "service ready" line naming them, run until SIGTERM/SIGINT, stop them all."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        for agent in agents:
            await agent.start()
        log.info("service ready", clusters=[a.settings.cluster_id for a in agents], ports=[a.http_port for a in agents])
        settle_heap()
        await stopping.wait()
    finally:
        log.info("service stopping")
        for agent in agents:
            await agent.stop()
        log.info("service stopped")


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m devtools.agent_pool SPEC.json  (a JSON list of agent environments)")
    settings = [settings_of(env) for env in json.loads(Path(argv[0]).read_text())]
    log = configure_logging(settings[0].log, SERVICE)
    agents = [build(each) for each in settings]
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(agents, log))


if __name__ == "__main__":
    main(sys.argv[1:])
