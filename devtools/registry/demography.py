"""Fixed tables the synthetic population is drawn from: countries, their weights, locales, models, orgs."""

from __future__ import annotations

import numpy as np

# (code, share of nationalities in the user base, locale). Skewed like a real, US-led user base.
_COUNTRY_TABLE: tuple[tuple[str, float, str], ...] = (
    ("US", 32.0, "en-US"),
    ("IN", 9.0, "en-IN"),
    ("BR", 5.0, "pt-BR"),
    ("GB", 4.5, "en-GB"),
    ("DE", 4.0, "de-DE"),
    ("FR", 3.5, "fr-FR"),
    ("JP", 3.2, "ja-JP"),
    ("CA", 3.0, "en-CA"),
    ("MX", 2.6, "es-MX"),
    ("ID", 2.4, "id-ID"),
    ("KR", 2.2, "ko-KR"),
    ("IT", 2.0, "it-IT"),
    ("ES", 2.0, "es-ES"),
    ("AU", 1.8, "en-AU"),
    ("PH", 1.6, "en-PH"),
    ("NL", 1.4, "nl-NL"),
    ("PL", 1.3, "pl-PL"),
    ("TR", 1.3, "tr-TR"),
    ("VN", 1.2, "vi-VN"),
    ("NG", 1.1, "en-NG"),
    ("PK", 1.0, "en-PK"),
    ("EG", 0.9, "ar-EG"),
    ("AR", 0.9, "es-AR"),
    ("CO", 0.9, "es-CO"),
    ("CN", 0.8, "zh-CN"),
    ("SE", 0.7, "sv-SE"),
    ("CH", 0.7, "de-CH"),
    ("BE", 0.6, "nl-BE"),
    ("IE", 0.6, "en-IE"),
    ("IL", 0.6, "he-IL"),
    ("SG", 0.6, "en-SG"),
    ("ZA", 0.6, "en-ZA"),
    ("UA", 0.6, "uk-UA"),
    ("RO", 0.5, "ro-RO"),
    ("PT", 0.5, "pt-PT"),
    ("CZ", 0.4, "cs-CZ"),
    ("AT", 0.4, "de-AT"),
    ("DK", 0.4, "da-DK"),
    ("NO", 0.4, "nb-NO"),
    ("FI", 0.3, "fi-FI"),
    ("NZ", 0.3, "en-NZ"),
    ("RU", 0.5, "ru-RU"),
    ("SA", 0.4, "ar-SA"),
    ("AE", 0.4, "en-AE"),
    ("TH", 0.6, "th-TH"),
    ("MY", 0.5, "en-MY"),
    ("KE", 0.4, "en-KE"),
    ("CL", 0.4, "es-CL"),
    ("PE", 0.3, "es-PE"),
    ("GR", 0.3, "el-GR"),
    ("HU", 0.3, "hu-HU"),
    ("BD", 0.5, "bn-BD"),
    ("TW", 0.5, "zh-TW"),
    ("HK", 0.3, "zh-HK"),
    ("IR", 0.2, "fa-IR"),
    ("MA", 0.3, "fr-MA"),
)

COUNTRIES: tuple[str, ...] = tuple(code for code, _, _ in _COUNTRY_TABLE)
LOCALES: tuple[str, ...] = tuple(locale for _, _, locale in _COUNTRY_TABLE)
COUNTRY_INDEX: dict[str, int] = {code: i for i, code in enumerate(COUNTRIES)}
US = COUNTRY_INDEX["US"]
UNKNOWN = -1  # index meaning "not recorded" in every country column

# Account types, in the order of the account_type column's codes.
ACCOUNT_TYPES: tuple[str, ...] = ("consumer", "enterprise_member", "employee")
CONSUMER, ENTERPRISE_MEMBER, EMPLOYEE = 0, 1, 2

# Entitlements are a bitmask over MODELS: bit i set = entitled to MODELS[i].
MODELS: tuple[str, ...] = ("fable-5", "mythos-5", "lyric-4", "sonnet-3")

# Organisation column: 0 is the provider's own organisation, 1..ORGANISATIONS are enterprise customers.
PROVIDER_ORGANISATION = "org-countermand"
ORGANISATIONS = 20_000
NO_ORGANISATION = -1


def organisation_id(index: int) -> str | None:
    """The organisation id of an organisation column value (None for consumers)."""
    if index == NO_ORGANISATION:
        return None
    return PROVIDER_ORGANISATION if index == 0 else f"org-{index:05d}"


def _shares(weights: dict[str, float] | None = None, background: float = 0.1) -> np.ndarray:
    """A probability vector over COUNTRIES: `weights` where given, over a `background` of the base shares."""
    base = np.array([share for _, share, _ in _COUNTRY_TABLE], dtype=np.float64)
    base /= base.sum()
    if not weights:
        return base
    chosen = np.zeros(len(COUNTRIES))
    for code, share in weights.items():
        chosen[COUNTRY_INDEX[code]] = share
    mixed = (1.0 - background) * chosen / chosen.sum() + background * base
    return mixed / mixed.sum()


NATIONALITY_SHARES = _shares()
# The provider's own staff: mostly US, with a real share of other nationalities.
EMPLOYEE_SHARES = _shares(
    {
        "US": 55.0,
        "IN": 9.0,
        "GB": 6.0,
        "CA": 5.0,
        "DE": 3.0,
        "FR": 3.0,
        "IE": 3.0,
        "CN": 3.0,
        "BR": 2.0,
        "JP": 1.5,
        "KR": 1.5,
        "IL": 1.5,
        "NL": 1.0,
        "PL": 1.0,
        "UA": 1.0,
        "MX": 1.0,
        "AU": 1.0,
        "SG": 0.5,
        "ES": 0.5,
        "IT": 0.5,
    }
)
# Where people who live abroad end up living (foreign nationals in the US are the largest group).
MIGRATION_SHARES = _shares(
    {
        "US": 40.0,
        "GB": 8.0,
        "DE": 8.0,
        "CA": 7.0,
        "AE": 5.0,
        "AU": 4.0,
        "FR": 4.0,
        "ES": 3.0,
        "NL": 3.0,
        "SG": 3.0,
        "CH": 2.0,
        "IE": 2.0,
        "JP": 2.0,
        "SE": 1.5,
        "IT": 1.5,
        "SA": 1.5,
        "BE": 1.0,
        "NZ": 1.0,
        "IN": 1.0,
        "MX": 1.0,
    }
)
