"""ISO 3166-1 alpha-2 country codes, validated against pycountry."""

from __future__ import annotations

from typing import Annotated

import pycountry
from pydantic import AfterValidator


def check_country(code: str) -> str:
    """Return the upper-cased alpha-2 code, or raise naming the bad value."""
    if not isinstance(code, str) or len(code) != 2 or pycountry.countries.get(alpha_2=code.upper()) is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code.upper()


CountryCode = Annotated[str, AfterValidator(check_country)]
