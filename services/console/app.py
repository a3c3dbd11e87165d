"""Composition root of the console: the Kafka feed, the board it fills, the web app and its upstream services."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import uvicorn
from fastapi import FastAPI

from services.console.actions import add_actions
from services.console.board import Board
from services.console.feed import SERVICE, Feed, Hub
from services.console.pages import create_app
from services.console.settings import ConsoleSettings
from services.console.upstream import Upstream
from services.console.views import render_key
from shared.runtime.auth import Guard
from shared.runtime.http import http_server


@dataclass
class ConsoleService:
    """The console, wired: start() reads the topics into the board; the HTTP app serves the pages."""

    settings: ConsoleSettings
    board: Board
    feed: Feed
    http: FastAPI
    client: httpx.AsyncClient

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()
        await self.client.aclose()

    async def wait_ready(self, poll_s: float = 0.1) -> None:
        """Return once the board has read every topic up to where it stood at start."""
        while not self.feed.caught_up:
            await asyncio.sleep(poll_s)

    def http_server(self) -> uvicorn.Server:
        return http_server(self.http, self.settings.http_host, self.settings.http_port)


def build(settings: ConsoleSettings | None = None) -> ConsoleService:
    """Build the console from settings; nothing connects until start()."""
    settings = settings or ConsoleSettings()
    board, hub = Board(), Hub()
    feed = Feed(
        settings.kafka,
        board,
        hub,
        lambda key: render_key(board, key, datetime.now(UTC)),
        check_interval_s=settings.broker_check_interval_s,
    )
    client = httpx.AsyncClient(timeout=settings.upstream_timeout_s)
    app = create_app(board, feed, hub, Guard(settings.auth, SERVICE), secure_cookie=settings.secure_cookie)
    add_actions(
        app,
        Upstream("intake", settings.intake_url, client),
        Upstream("impact", settings.impact_url, client),
        Upstream("audit", settings.audit_url, client),
    )
    return ConsoleService(settings, board, feed, app, client)
