"""`python -m services.intake`: the broker and the HTTP API in one process until SIGTERM/SIGINT."""

from __future__ import annotations

from services.intake.app import IntakeService, build
from services.intake.desk import SERVICE
from services.intake.settings import IntakeSettings
from shared.runtime.service import run


def main() -> None:
    """Start intake, log "service ready" once caught up with the directive topic, stop on SIGTERM/SIGINT."""
    run(
        SERVICE,
        build,
        IntakeSettings,
        caught_up=IntakeService.wait_ready,
        http=IntakeService.http_server,
        ready_fields=lambda settings, service: {
            "http": f"http://{settings.http_host}:{settings.http_port}",
            "directives": len(service.desk.book.entries()),
        },
    )


if __name__ == "__main__":
    main()
