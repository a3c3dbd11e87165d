"""Run the impact service: `python -m services.impact` (the broker and the HTTP API in one process)."""

from __future__ import annotations

import asyncio
import contextlib
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
    server = service.http_server()
    server.capture_signals = contextlib.nullcontext  # this process handles the signals itself
    serving = asyncio.create_task(server.serve())  # /healthz answers during the load; /readyz once caught up
    stop = asyncio.create_task(stopping.wait())
    try:
        await service.start()
        log.info("service ready", users=service.view.population.users, resumed_from=service.resumed_from,
                 records_read=service.records_read, http=f"http://{settings.http_host}:{settings.http_port}")
        await asyncio.wait({stop, serving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("service stopping")
        stop.cancel()
        server.should_exit = True
        await serving
        await service.stop()
        log.info("service stopped")


if __name__ == "__main__":
    asyncio.run(main())
