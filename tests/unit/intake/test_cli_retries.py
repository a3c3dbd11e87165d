"""The CLI's writes: one Idempotency-Key per command, the same key on every retry, a bounded number of retries."""

from __future__ import annotations

import httpx
import pytest

from services.intake.cli import send_idempotently


class FlakyIntake:
    """Answers with the given outcomes in turn (a status, or an exception to raise), recording the keys sent."""

    def __init__(self, *outcomes: int | Exception) -> None:
        self.outcomes = list(outcomes)
        self.keys: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers["Idempotency-Key"])
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, json={"directive_id": "EXP-1", "revision": 1, "event_id": "e"})


def client(intake: FlakyIntake) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(intake), base_url="http://intake")


def test_a_timeout_a_lost_connection_and_a_503_are_retried_with_the_same_key() -> None:
    intake = FlakyIntake(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), 503, 202)
    waits: list[float] = []
    response = send_idempotently(client(intake), "POST", "/directives", json={}, sleep=waits.append)
    assert response.status_code == 202
    assert len(intake.keys) == 4 and len(set(intake.keys)) == 1
    assert waits == sorted(waits) and len(waits) == 3


def test_a_refusal_is_not_retried() -> None:
    intake = FlakyIntake(422)
    assert send_idempotently(client(intake), "POST", "/directives", json={}, sleep=lambda _: None).status_code == 422
    assert len(intake.keys) == 1


def test_retries_stop_after_the_last_attempt() -> None:
    intake = FlakyIntake(*[httpx.ConnectError("refused")] * 3)
    with pytest.raises(httpx.ConnectError):
        send_idempotently(client(intake), "POST", "/directives", json={}, attempts=3, sleep=lambda _: None)
    assert len(intake.keys) == 3


def test_each_command_gets_its_own_key() -> None:
    first, second = FlakyIntake(202), FlakyIntake(202)
    send_idempotently(client(first), "POST", "/directives", json={}, sleep=lambda _: None)
    send_idempotently(client(second), "POST", "/directives", json={}, sleep=lambda _: None)
    assert first.keys != second.keys
