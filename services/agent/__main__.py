"""`python -m services.agent`: run one cluster's agent until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from services.agent.app import build
from services.agent.settings import AgentSettings
from shared.runtime.logging import configure_logging


async def main() -> None:
    settings = AgentSettings()
    log = configure_logging(settings.log, "agent")
    agent = build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await agent.start()
    log.info("service ready", cluster_id=settings.cluster_id, http_port=agent.http_port,
             group=settings.group)
    try:
        await stopping.wait()
    finally:
        await agent.stop()
        log.info("service stopped")


if __name__ == "__main__":
    asyncio.run(main())
