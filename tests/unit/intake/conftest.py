"""What the desk's unit tests share: the emergency role acting alone and a directive request."""

from __future__ import annotations

from services.intake.desk import Mandate
from shared.contracts.directives import DirectiveRequest

# Revision assignment, idempotency and conflicts, exercised through the emergency role acting alone (four eyes:
# test_four_eyes)
ALONE = Mandate("erin", emergency_reason="drill")


def request(directive_id: str = "EXP-1", title: str = "t") -> DirectiveRequest:
    return DirectiveRequest.model_validate(
        {
            "directive_id": directive_id,
            "title": title,
            "scope": {"models": ["fable-5"], "selector": {"kind": "foreign_national", "home_country": "US"}},
        }
    )
