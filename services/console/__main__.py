"""`python -m services.console`: the Kafka feed and the web console in one process until SIGTERM/SIGINT."""

from __future__ import annotations

from services.console.app import ConsoleService, build
from services.console.feed import SERVICE
from services.console.settings import ConsoleSettings
from shared.runtime.service import run


def main() -> None:
    """Start the console, log "service ready" once it has read the topics, stop on SIGTERM/SIGINT."""
    run(
        SERVICE,
        build,
        ConsoleSettings,
        caught_up=ConsoleService.wait_ready,
        http=ConsoleService.http_server,
        http_during_start=True,
        ready_fields=lambda settings, service: {"directives": len(service.board.listing())},
    )


if __name__ == "__main__":
    main()
