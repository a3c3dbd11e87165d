"""Which models a progress report confirms (pure): a model is confirmed once every cluster serving it applied the
revision; a cluster that names no models (a lift, or a report that does not say) counts for every model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from shared.contracts.enforcement import ClusterProgress


def served(clusters: Mapping[str, ClusterProgress], known: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """Cluster -> the models it serves (as reported, else as last known); an empty set means every model."""
    return {c: frozenset(p.models or known.get(c, ())) for c, p in clusters.items()}


def confirmed_models(
    clusters: Mapping[str, ClusterProgress], models: Iterable[str], known: Mapping[str, Sequence[str]] = {}
) -> frozenset[str]:
    """The models whose every serving cluster is applied in this report."""
    serves = served(clusters, known)
    return frozenset(
        m for m in models if all(p.state == "applied" for c, p in clusters.items() if not serves[c] or m in serves[c])
    )
