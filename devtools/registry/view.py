"""A generated population as the impact view's bulk-load input, without Kafka (benchmarks and tests)."""

from __future__ import annotations

from devtools.registry.demography import ACCOUNT_TYPES, COUNTRIES, MODELS, ORGANISATIONS, organisation_id
from devtools.registry.population import Population
from services.impact.user_columns import CodedUsers


def coded_users(pop: Population) -> CodedUsers:
    """The population's columns as CodedUsers (codes over the registry's tables)."""
    return CodedUsers(
        user_ids=pop.user_id,
        nationalities=(pop.nat1, pop.nat2),
        nationality_unknown=pop.nat_unknown,
        residence=pop.residence,
        account_type=pop.account_type,
        organisation=pop.organisation,
        entitlements=pop.entitlements,
        countries=COUNTRIES,
        account_types=ACCOUNT_TYPES,
        organisations=[organisation_id(i) for i in range(ORGANISATIONS + 1)],
        models=MODELS,
    )
