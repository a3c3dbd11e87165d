"""Settings of the impact service (env prefix COUNTERMAND_IMPACT_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.runtime.settings import ServiceSettings


class ImpactSettings(ServiceSettings):
    """Impact service settings: registry catch-up bound and batch size."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_IMPACT_", extra="forbid")

    catch_up_timeout_s: float = Field(
        30.0, gt=0, description="How long an assessment waits for the user view to reach the registry's end offsets.")
    registry_batch: int = Field(20_000, ge=1, description="Most registry records applied as one batch.")
