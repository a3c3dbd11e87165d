"""Signed webhooks: the Standard Webhooks known answer, a real receiver that rejects forgeries and replays,
the URL rules, and how each answer is classified."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from services.notifier.retry import Outcome
from services.notifier.webhook_transport import webhook_transport
from services.notifier.webhooks import (
    UrlPolicy,
    WebhookRefused,
    new_secret,
    post,
    request_timeout,
    signature,
    signed_headers,
    verify,
)

SECRET = new_secret()


def test_the_standard_webhooks_known_answer() -> None:
    assert (
        signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_receiver_accepts_a_signature_of_any_active_secret_during_rotation() -> None:
    old, new = new_secret(), new_secret()
    headers = signed_headers([old, new], "n-1", b"{}")
    assert verify([new], headers, b"{}") == "n-1"
    assert verify([old], headers, b"{}") == "n-1"


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret", "missing"])
def test_a_tampered_or_unsigned_webhook_is_refused(tamper: str) -> None:
    body = b'{"directive_id": "d-1"}'
    headers = signed_headers([SECRET], "n-1", body)
    secrets_ = [SECRET]
    if tamper == "body":
        body = body.replace(b"d-1", b"d-2")
    elif tamper == "id":
        headers["webhook-id"] = "n-2"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    elif tamper == "secret":
        secrets_ = [new_secret()]
    else:
        del headers["webhook-signature"]
    with pytest.raises(WebhookRefused):
        verify(secrets_, headers, body)


def test_an_old_webhook_is_refused_as_a_replay() -> None:
    headers = signed_headers([SECRET], "n-1", b"{}", now=1_000_000)
    with pytest.raises(WebhookRefused, match="tolerance"):
        verify([SECRET], headers, b"{}", now=1_000_000 + 301)


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://hooks.example.com/x", "must be https"),
        ("https://evil.example.net/x", "not in the allow-list"),
        ("https://example.com.evil.net/x", "not in the allow-list"),
        ("ftp://127.0.0.1/x", "must be https"),
        ("https:///x", "no host"),
    ],
)
def test_urls_outside_the_rules_are_refused(url: str, problem: str) -> None:
    with pytest.raises(WebhookRefused, match=problem):
        UrlPolicy(("example.com", "127.0.0.1")).check(url)


def test_https_inside_the_allow_list_and_plain_http_on_loopback_are_allowed() -> None:
    policy = UrlPolicy(("example.com", "127.0.0.1", "localhost"))
    policy.check("https://hooks.example.com/countermand")
    policy.check("http://127.0.0.1:8999/hook")
    policy.check("http://localhost:8999/hook")


class Receiver:
    """A customer's endpoint: verifies each webhook, drops replays by webhook-id, answers as told."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.refused: list[str] = []
        self.status = 204
        self.hang = False
        self.release = asyncio.Event()
        self.app = FastAPI()
        self.app.post("/hook")(self.hook)

    async def hook(self, request: Request) -> Response:
        if self.hang:
            await self.release.wait()
        body = await request.body()
        try:
            webhook_id = verify([SECRET], request.headers, body)
        except WebhookRefused as exc:
            self.refused.append(str(exc))
            return Response(status_code=400)
        if webhook_id not in self.received:
            self.received.append(webhook_id)
        return Response(status_code=self.status)


@asynccontextmanager
async def sender(timeout_s: float = 5.0) -> AsyncIterator[Callable[[str, list[str], str, bytes], Awaitable[Outcome]]]:
    """post() as the webhook channel calls it: on the channel's transport, with its timeouts."""
    transport = webhook_transport(httpx.create_ssl_context())

    async def send(url: str, secrets: list[str], webhook_id: str, body: bytes) -> Outcome:
        return await post(transport, httpx.URL(url), secrets, webhook_id, body, request_timeout(timeout_s))

    try:
        yield send
    finally:
        await transport.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(endpoint.app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield endpoint, f"http://127.0.0.1:{port}/hook"
    endpoint.release.set()
    server.should_exit = True
    await task


async def test_a_signed_webhook_is_delivered_once_even_when_sent_twice(receiver) -> None:
    endpoint, url = receiver
    async with sender(5) as send:
        first = await send(url, [SECRET], "d-1:1:restricted:7", b'{"models": ["fable-5"]}')
        again = await send(url, [SECRET], "d-1:1:restricted:7", b'{"models": ["fable-5"]}')
    assert first.verdict == again.verdict == "delivered"
    assert endpoint.received == ["d-1:1:restricted:7"]


async def test_a_forged_webhook_is_refused_by_the_receiver(receiver) -> None:
    endpoint, url = receiver
    async with sender(5) as send:
        outcome = await send(url, [new_secret()], "forged", b"{}")
    assert outcome.verdict == "permanent" and outcome.reason == "HTTP 400"
    assert endpoint.received == [] and "no signature matches" in endpoint.refused[0]


@pytest.mark.parametrize(
    "status, verdict", [(410, "permanent"), (404, "permanent"), (429, "transient"), (503, "transient")]
)
async def test_answers_are_classified(receiver, status: int, verdict: str) -> None:
    endpoint, url = receiver
    endpoint.status = status
    async with sender(5) as send:
        outcome = await send(url, [SECRET], f"n-{status}", b"{}")
    assert (outcome.verdict, outcome.reason) == (verdict, f"HTTP {status}")


async def test_a_receiver_that_never_answers_is_a_transient_timeout(receiver) -> None:
    endpoint, url = receiver
    endpoint.hang = True
    async with sender(0.3) as send:
        outcome = await send(url, [SECRET], "n-slow", b"{}")
    assert (outcome.verdict, outcome.reason) == ("transient", "timed out")


async def test_a_refused_connection_is_transient() -> None:
    async with sender(2) as send:
        outcome = await send(f"http://127.0.0.1:{_free_port()}/hook", [SECRET], "n-x", b"{}")
    assert outcome.verdict == "transient" and outcome.reason.startswith("connection failed")
