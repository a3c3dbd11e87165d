"""Contract messages as the registry, impact and enforcement publish them, for the tests and benchmarks that play
those services: one builder per message kind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyroaring import BitMap

from shared.contracts.bitmaps import encode_bitmap, scope_digest
from shared.contracts.directives import DirectiveScope
from shared.contracts.enforcement import ClusterProgress, DirectiveEnforced
from shared.contracts.impact import AffectedSetChunk, ImpactAssessed
from shared.contracts.users import UserUpserted

UNCHECKED = "x"  # a digest nobody recomputes: an assessment's and its confirmation's only have to agree


def user_upserted(
    user_id: int, email: str, entitlements: Iterable[str], *, producer: str = "test", **fields: Any
) -> UserUpserted:
    """A French consumer holding `entitlements`; `fields` set any other field (locale, account type, organisation)."""
    return UserUpserted(
        producer=producer,
        user_id=user_id,
        email=email,
        entitlements=list(entitlements),
        **{"nationalities": ["FR"], "residence": "FR", "account_type": "consumer", **fields},
    )


def impact_assessment(
    directive: str,
    revision: int,
    action: str,
    sets: Mapping[str, Iterable[int]],
    *,
    amended_from: int | None = None,
    added: Mapping[str, Iterable[int]] | None = None,
    removed: Mapping[str, Iterable[int]] | None = None,
    model_digests: dict[str, str] | None = None,
    producer: str = "test",
) -> list[ImpactAssessed | AffectedSetChunk]:
    """An ImpactAssessed and one chunk per model, as impact publishes them; an amendment's "added" then "removed"
    chunks (one per model) follow the whole ones. Without `model_digests` every digest is UNCHECKED."""
    whole = {model: BitMap(users) for model, users in sets.items()}
    diff = [("added", m, BitMap(u)) for m, u in sorted((added or {}).items())]
    diff += [("removed", m, BitMap(u)) for m, u in sorted((removed or {}).items())]
    revision_of = {
        "producer": producer,
        "correlation_id": directive,
        "directive_id": directive,
        "revision": revision,
        "action": action,
    }
    head = ImpactAssessed(
        **revision_of,
        scope=DirectiveScope.model_validate({"models": sorted(whole), "selector": {"kind": "everyone"}}),
        affected_by_model={m: len(u) for m, u in whole.items()},
        affected_users=len(BitMap().union(*whole.values())),
        model_digests=model_digests or dict.fromkeys(whole, UNCHECKED),
        digest=scope_digest(model_digests) if model_digests else UNCHECKED,
        registry_offsets={},
        chunks=len(whole),
        amended_from=amended_from,
        diff_chunks=len(diff),
    )
    parts = [("whole", model, whole[model]) for model in sorted(whole)] + diff
    chunks = [
        AffectedSetChunk(
            **revision_of,
            model=model,
            chunk=index,
            chunks=len(whole) if part == "whole" else len(whole) + len(diff),
            users=encode_bitmap(users),
            part=part,
        )
        for index, (part, model, users) in enumerate(parts)
    ]
    return [head, *chunks]


def directive_enforced(
    directive: str,
    revision: int,
    action: str,
    *,
    clusters: Iterable[str],
    digest: str = UNCHECKED,
    producer: str = "test",
    **fields: Any,
) -> DirectiveEnforced:
    """Enforcement's confirmation that every one of `clusters` applied the revision, each acknowledged in 0.1 s
    unless `fields` say otherwise (`ack_latency_s`, `occurred_at`)."""
    applied = list(clusters)
    return DirectiveEnforced(
        producer=producer,
        correlation_id=directive,
        directive_id=directive,
        revision=revision,
        action=action,
        digest=digest,
        clusters={c: ClusterProgress(state="applied") for c in applied},
        **{"ack_latency_s": dict.fromkeys(applied, 0.1), **fields},
    )
