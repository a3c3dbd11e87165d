"""`python -m services.intake`: the broker and the HTTP API in one process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from services.intake.app import build
from services.intake.desk import SERVICE
from services.intake.settings import IntakeSettings
from shared.runtime.logging import configure_logging


async def run(settings: IntakeSettings) -> None:
    """Start intake, log "service ready" once caught up, stop gracefully on SIGTERM/SIGINT."""
    log = configure_logging(settings.log, SERVICE)
    service = build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await service.start()
    server = service.http_server()
    server.capture_signals = contextlib.nullcontext  # this process handles the signals itself
    serving = asyncio.create_task(server.serve())
    stop = asyncio.create_task(stopping.wait())
    ready = asyncio.create_task(service.wait_ready())
    try:
        await asyncio.wait({ready, stop, serving}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            log.info("service ready", http=f"http://{settings.http_host}:{settings.http_port}",
                     directives=len(service.desk.book.entries()))
            await asyncio.wait({stop, serving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("service stopping")
        ready.cancel()
        stop.cancel()
        server.should_exit = True
        await serving
        await service.stop()
        log.info("service stopped")


def main() -> None:
    asyncio.run(run(IntakeSettings()))


if __name__ == "__main__":
    main()
