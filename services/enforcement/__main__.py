"""Run the enforcement service: `python -m services.enforcement`."""

from __future__ import annotations

from services.enforcement.app import SERVICE, EnforcementService, build
from services.enforcement.settings import EnforcementSettings
from shared.runtime.service import run

if __name__ == "__main__":
    run(
        SERVICE,
        build,
        EnforcementSettings,
        http=EnforcementService.http_server,
        ready_fields=lambda settings, _: {"bootstrap": settings.kafka.bootstrap, "state_dir": str(settings.state_dir)},
    )
