"""`python -m services.<name>`: build from settings, start, log "service ready", run until SIGTERM/SIGINT, stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import uvicorn
from pydantic import ValidationError

from shared.runtime import producer_watch
from shared.runtime.event_loop import event_loop_factory
from shared.runtime.logging import configure_logging
from shared.runtime.metrics_env import export_interval_s, metrics_exporter_kind
from shared.runtime.settings import ServiceSettings, UnknownSetting, refuse_unknown_variables
from shared.runtime.uvicorn_fence import ignore_signals


class Service(Protocol):
    """What a composition root's build() returns."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=ServiceSettings)
T = TypeVar("T", bound=Service)


def run(
    name: str,
    build: Callable[[S], T],
    settings_cls: Callable[[], S],
    *,
    ready_fields: Callable[[S, T], dict[str, Any]] | None = None,
    caught_up: Callable[[T], Awaitable[None]] | None = None,
    http: Callable[[T], uvicorn.Server] | None = None,
    http_during_start: bool = False,
) -> None:
    """Run the service in this process until SIGTERM/SIGINT.

    `ready_fields` adds fields to the "service ready" line; `caught_up` delays that line until it returns;
    `http` is a uvicorn server served alongside the broker, from before start() if `http_during_start`
    (so /healthz answers during a long start), else once started.
    """
    settings = load_settings(name, settings_cls)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(
            _run(
                name,
                build,
                settings,
                ready_fields=ready_fields,
                caught_up=caught_up,
                http=http,
                http_during_start=http_during_start,
            )
        )
    if producer_watch.failures():
        raise SystemExit(producer_watch.EXIT_CODE)  # stopped because a producer failed for good: restart me


def load_settings(name: str, settings_cls: Callable[[], S]) -> S:
    """The service's settings from the environment; exit 2 naming every unknown or invalid variable."""
    try:
        refuse_unknown_variables(settings_cls, os.environ)  # type: ignore[arg-type]
        settings = settings_cls()
        if metrics_exporter_kind() != "none":
            export_interval_s()
        return settings
    except UnknownSetting as exc:
        problem = str(exc)
    except ValidationError as exc:
        prefix = getattr(settings_cls, "model_config", {}).get("env_prefix", "")
        problem = "; ".join(f"{_variable(prefix, e['loc'])}: {e['msg']}" for e in exc.errors())
    except ValueError as exc:  # a standard OTEL_* variable this process cannot honour
        problem = str(exc)
    sys.stderr.write(f"{name}: cannot start: {problem}\n")
    raise SystemExit(2)


def _variable(prefix: str, loc: tuple) -> str:
    """The environment variable a settings error location names (a section's own prefix for kafka/log/otel)."""
    sections = {
        "kafka": "COUNTERMAND_KAFKA_",
        "log": "COUNTERMAND_LOG_",
        "telemetry": "COUNTERMAND_OTEL_",
        "auth": "COUNTERMAND_AUTH_",
    }
    parts = [str(p) for p in loc]
    if not parts:
        return "settings"
    if parts[0] in sections and len(parts) == 1:
        return sections[parts[0]].rstrip("_")  # the section as a whole (a check across its variables)
    if parts[0] in sections:
        return (sections[parts[0]] + "_".join(parts[1:])).upper()
    return (prefix + "_".join(parts)).upper()


def resume_collector() -> None:
    """Once imported and built: keep what that allocated out of the cyclic collector's sight, then let it run again.

    A process may pause the collector before its imports (impact's __main__ does): the imports then pay for no full
    collection over their own growing heap (two of them, about 0.1 s of impact's start). No collection here either:
    the garbage of the imports is a few thousand objects, kept; settle_heap collects what the start leaves.
    """
    gc.freeze()
    gc.enable()


def settle_heap() -> None:
    """Once started: collect the start-up garbage, then keep what survives (libraries, loaded state) out of
    the cyclic collector's sight, so that its later full collections stay short instead of pausing the loop."""
    gc.collect()
    gc.freeze()


async def _run(
    name: str,
    build: Callable[[S], T],
    settings: S,
    *,
    ready_fields: Callable[[S, T], dict[str, Any]] | None,
    caught_up: Callable[[T], Awaitable[None]] | None,
    http: Callable[[T], uvicorn.Server] | None,
    http_during_start: bool,
) -> None:
    log = configure_logging(settings.log, name)
    metrics = _metrics_bridge(name)
    service = build(settings)
    resume_collector()
    stop = _signalled()
    server = http(service) if http else None
    serving = _serve(server) if server and http_during_start else None
    try:
        await service.start()
        _watch_producers(service, name)
        if server and serving is None:
            serving = _serve(server)
        watched = {stop, serving} - {None}
        if await _caught_up(service, caught_up, watched):
            fields = ready_fields(settings, service) if ready_fields else {}
            if server and "http" not in fields and (address := await _bound(server)):
                fields["http"] = address
            log.info("service ready", **fields)
            settle_heap()
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("service stopping")
        stop.cancel()
        if server:
            server.should_exit = True
        if serving:
            await serving
        await service.stop()
        if metrics is not None:
            await asyncio.to_thread(metrics.stop)
        log.info("service stopped")


def _metrics_bridge(name: str) -> Any:
    """OTLP beside /metrics when OTEL_METRICS_EXPORTER=otlp; the SDK is imported only then."""
    if metrics_exporter_kind() == "none":
        return None
    from shared.runtime.metrics_export import metrics_bridge

    return metrics_bridge(name)


def _watch_producers(service: Any, name: str) -> None:
    """Stop the process if the producer of the service's broker fails for good (see producer_watch); a service with
    producers of its own (`watch_producers(on_fatal)`: intake's transactional writer) watches them the same way."""
    broker = getattr(service, "broker", None)
    producer = producer_watch.broker_producer(broker) if broker is not None else None
    if producer is not None:
        producer_watch.watch(producer, f"{name} broker", producer_watch.stop_process)
    others = getattr(service, "watch_producers", None)
    if others is not None:
        others(producer_watch.stop_process)


async def _bound(server: uvicorn.Server, timeout_s: float = 5.0) -> str | None:
    """http://host:port the server listens on (the port it got when asked for 0), once it has started."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not server.started and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    if not server.started or not server.servers:
        return None
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return f"http://{host}:{port}"


def _signalled() -> asyncio.Task:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return asyncio.create_task(stopping.wait())


def _serve(server: uvicorn.Server) -> asyncio.Task:
    ignore_signals(server)  # this process handles the signals itself
    return asyncio.create_task(server.serve())


async def _caught_up(service: T, caught_up: Callable[[T], Awaitable[None]] | None, watched: set) -> bool:
    """True once `caught_up` returns; False if a signal or the HTTP server ending comes first."""
    if caught_up is None:
        return True
    ready = asyncio.ensure_future(caught_up(service))
    try:
        await asyncio.wait({ready, *watched}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            ready.result()  # a failure to catch up stops the service rather than passing for ready
        return ready.done()
    finally:
        ready.cancel()


async def cancel_tasks(*tasks: asyncio.Task | None) -> None:
    """Cancel a service's background tasks and wait until each has finished (a stop leaves none running)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a task's own failure was logged where it ran
            await task
