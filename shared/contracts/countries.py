"""ISO 3166-1 alpha-2 country codes, validated against pycountry."""

from __future__ import annotations

from typing import Annotated

import pycountry
from pydantic import AfterValidator

# Looked up once: validation runs for every registry record, and pycountry's lookup is slow.
ALPHA_2: frozenset[str] = frozenset(country.alpha_2 for country in pycountry.countries)


def check_country(code: str) -> str:
    """Return the upper-cased alpha-2 code, or raise naming the bad value."""
    upper = code.upper() if isinstance(code, str) else code
    if upper not in ALPHA_2:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return upper


CountryCode = Annotated[str, AfterValidator(check_country)]
