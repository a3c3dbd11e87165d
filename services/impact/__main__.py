"""Run the impact service: `python -m services.impact`."""

from __future__ import annotations

import asyncio
import signal

from services.impact.app import SERVICE, build
from services.impact.settings import ImpactSettings
from shared.runtime.logging import configure_logging


async def main() -> None:
    settings = ImpactSettings()
    log = configure_logging(settings.log, SERVICE)
    service = build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await service.start()
    log.info("service ready", users=service.view.population.users)
    try:
        await stopping.wait()
    finally:
        await service.stop()
        log.info("service stopped")


if __name__ == "__main__":
    asyncio.run(main())
