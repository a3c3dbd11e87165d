"""Run the enforcement service: `python -m services.enforcement`."""

from __future__ import annotations

import asyncio
import signal

from shared.runtime.logging import configure_logging
from services.enforcement.app import SERVICE, build
from services.enforcement.settings import EnforcementSettings


async def main() -> None:
    settings = EnforcementSettings()
    log = configure_logging(settings.log, SERVICE)
    service = build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await service.start()
    log.info("service ready", bootstrap=settings.kafka.bootstrap, state_dir=str(settings.state_dir))
    try:
        await stopping.wait()
    finally:
        await service.stop()
        log.info("service stopped")


if __name__ == "__main__":
    asyncio.run(main())
