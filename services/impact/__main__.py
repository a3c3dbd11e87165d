"""Run the impact service: `python -m services.impact` (the broker and the HTTP API in one process)."""

from __future__ import annotations

import gc

gc.disable()  # no cyclic collection while the imports and build() allocate: run() resumes it (resume_collector)

from services.impact.app import SERVICE, ImpactService, build  # noqa: E402
from services.impact.settings import ImpactSettings  # noqa: E402
from shared.runtime.service import run  # noqa: E402


def main() -> None:
    """/healthz answers during the load; /readyz and "service ready" once the view has caught up."""
    run(
        SERVICE,
        build,
        ImpactSettings,
        http=ImpactService.http_server,
        http_during_start=True,
        ready_fields=lambda settings, service: {
            "users": service.view.population.users,
            "resumed_from": service.resumed_from,
            "records_read": service.records_read,
            "http": f"http://{settings.http_host}:{settings.http_port}",
        },
    )


if __name__ == "__main__":
    main()
