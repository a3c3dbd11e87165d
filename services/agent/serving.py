"""The agent's HTTP server, embedded in its event loop: serving (503 until ready) before commands are consumed."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from services.agent.http import server_config
from shared.runtime.uvicorn_fence import embedded_server


class EmbeddedHttp:
    """The access API on host:port (0: any free port, `port` once started)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app, self.host, self.requested = app, host, port
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve; raises the bind error if the server stops before it started."""
        self._server = embedded_server(server_config(self.app, self.host, self.requested))
        serving = asyncio.create_task(self._server.serve(), name="agent-http")
        while not self._server.started:
            if serving.done():
                serving.result()  # raises the bind error
                raise RuntimeError("HTTP server stopped before it started")
            await asyncio.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._serving = serving

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
        self._server = self._serving = None
