"""A local webhook receiver (uvicorn on loopback) for tests, `make run` and benchmarks: verifies Standard
Webhooks signatures, refuses tampered bodies and replays, keeps one copy per webhook-id, answers as told."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request, Response

from devtools.ports import free_port
from services.notifier.webhooks import WebhookRefused, verify


@dataclass
class HookReceiver:
    """POST /<path>: `status[path]` answers with that status (default 204); `hang` paths never answer."""

    secrets: list[str]
    status: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    received: dict[str, dict] = field(default_factory=dict)  # webhook-id -> payload, first copy
    copies: int = 0
    refused: list[str] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def start(self) -> HookReceiver:
        app = FastAPI()
        app.post("/{path}")(self._hook)
        self.port = self.port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # hanging requests do not hold the stop
            await self._task

    async def _hook(self, path: str, request: Request) -> Response:
        if path in self.hang:
            await asyncio.Event().wait()
        body = await request.body()
        try:
            webhook_id = verify(self.secrets, request.headers, body)
        except WebhookRefused as exc:
            self.refused.append(str(exc))
            return Response(status_code=400)
        status = self.status.get(path, 204)
        if 200 <= status < 300:
            self.copies += 1
            self.received.setdefault(webhook_id, json.loads(body))
        return Response(status_code=status)
