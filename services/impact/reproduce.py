"""Recompute an assessment's digest from the registry as of its recorded offsets, for the audit (exact while
compaction has kept the records below those offsets; see the impact README).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.impact.affected import assess
from services.impact.registry_view import RegistryView
from shared.contracts.catalogue import USERS
from shared.contracts.directives import DirectiveScope
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import KafkaSettings

BATCH = 20_000  # records applied to the view at a time, as the service applies them


async def registry_view_at(settings: KafkaSettings, registry_offsets: Mapping[int, int]) -> RegistryView:
    """The user view built from every registry record below the offsets (partition -> next offset)."""
    until = {int(p): int(o) for p, o in registry_offsets.items() if int(o) > 0}
    view = RegistryView()
    if not until:
        return view
    batch: list = []
    try:
        async for record in records_to_end(settings, USERS, "impact-reproduce", until=until):
            batch.append(record)
            if len(batch) >= BATCH:
                view.apply(batch)
                batch.clear()
    except ValueError as exc:  # offsets beyond the topic's end
        raise ValueError(f"registry_offsets: {exc}") from exc
    view.apply(batch)
    return view


async def reproduce(
    settings: KafkaSettings, registry_offsets: Mapping[int, int], scope: DirectiveScope
) -> tuple[dict[str, str], str]:
    """(per-model digests, scope digest) of the scope over the registry as of the offsets."""
    affected = assess((await registry_view_at(settings, registry_offsets)).population, scope)
    return affected.model_digests, affected.digest
