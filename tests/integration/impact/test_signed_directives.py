"""Impact on the real broker assesses only directive events signed by a current intake key: one signed by intake
with one byte of its body changed, one signed by a retired or an unknown key, and one unsigned are each
dead-lettered naming the reason; none is assessed and impact's directives are unchanged. The genuine event,
sent after them on the same partition, is assessed."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from services.impact.app import ImpactService, build
from shared.contracts.catalogue import DIRECTIVES
from shared.runtime.record_signing import SigningSettings, encoded, signed_headers
from shared.runtime.signing import KeySet, Signer
from tests.integration.impact.conftest import DEAD_LETTERS, assessment_of, issued, read_until, settings_for

pytestmark = pytest.mark.kafka

INTAKE = Signer.generate("intake-2026")
RETIRED = Signer.generate("intake-2025")  # trusted until an hour ago
STRANGER = Signer.generate("intake-stranger")  # a key id impact does not know
NOBODY = {"kind": "organisation", "any_of": ["org-signed-directives-nobody"]}


@pytest.fixture
async def signed_impact(bootstrap: str, tmp_path: Path) -> ImpactService:
    (tmp_path / "impact.pem").write_bytes(Signer.generate("impact-k").pem())
    trusted = KeySet([INTAKE.public(), RETIRED.public(datetime.now(UTC) - timedelta(hours=1))])
    (tmp_path / "intake.json").write_text(trusted.to_json())
    signing = SigningSettings(
        mode="on", key_file=tmp_path / "impact.pem", key_id="impact-k", trusted_keys_file=tmp_path / "intake.json"
    )
    impact = build(settings_for(bootstrap, tmp_path, signing=signing))
    await impact.start()
    try:
        yield impact
    finally:
        await impact.stop()


def letters_of(letters: list[dict], values: list[bytes]) -> dict[bytes, str]:
    """The reason each of these directive values was dead-lettered with."""
    wanted = {base64.b64encode(v).decode(): v for v in values}
    return {wanted[e["value_b64"]]: e["reason"] for e in letters if e.get("value_b64") in wanted}


async def test_an_altered_retired_unknown_or_unsigned_directive_is_dead_lettered_and_never_assessed(
    signed_impact: ImpactService, producer: AIOKafkaProducer, bootstrap: str, unique: str
) -> None:
    directive = f"{unique}-signed"
    genuine = encoded(issued(directive, 1, NOBODY, ["fable-5"]))
    key = directive.encode()
    altered = genuine.replace(b'"revision":1', b'"revision":2', 1)
    assert sum(a != b for a, b in zip(altered, genuine, strict=True)) == 1
    # Each of these names another organisation: had one been assessed, its selector would show it.
    retired, unknown, unsigned = (genuine.replace(b"-nobody", f"-nobody-{n}".encode()) for n in "123")
    sent = [
        (altered, signed_headers(INTAKE, DIRECTIVES, key, genuine)),  # intake's signature over the original bytes
        (retired, signed_headers(RETIRED, DIRECTIVES, key, retired)),
        (unknown, signed_headers(STRANGER, DIRECTIVES, key, unknown)),
        (unsigned, signed_headers(None, DIRECTIVES, key, unsigned)),
        (genuine, signed_headers(INTAKE, DIRECTIVES, key, genuine)),  # last, on the same partition
    ]
    for value, headers in sent:
        await producer.send_and_wait(
            DIRECTIVES.name, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )
    values = [altered, retired, unknown, unsigned]

    head, _ = await assessment_of(bootstrap, directive, "restrict")  # the genuine one, after the bad ones
    assert head["revision"] == 1 and head["scope"]["selector"] == NOBODY
    letters = await read_until(
        bootstrap, DEAD_LETTERS.name, 1, lambda seen: len(letters_of(seen, values)) == len(values)
    )
    reasons = letters_of(letters, values)
    assert reasons[values[0]] == "SignatureRefused: bad signature (key id 'intake-2026')"
    assert reasons[values[1]] == "SignatureRefused: retired signing key (key id 'intake-2025')"
    assert reasons[values[2]] == "SignatureRefused: unknown signing key (key id 'intake-stranger')"
    assert reasons[values[3]] == "SignatureRefused: unsigned"
    # Nothing changed: only the genuine revision 1 was assessed (the altered copy claims revision 2), and it is
    # the one in force, with the genuine scope.
    assert signed_impact.assessor.directives.assessed[directive] == 1
    active = signed_impact.assessor.directives.active[directive]
    assert active.revision == 1 and active.scope.selector.model_dump() == NOBODY
