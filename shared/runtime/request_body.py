"""Request bodies at the HTTP edge: size limited while streaming, then decoded and parsed within the limits.

`BodyLimit` (ASGI middleware) answers 413 as soon as Content-Length or the bytes received pass MAX_BODY_BYTES,
before the rest is read. `json_body` turns the bytes into data or a `BadBody` naming what is wrong: empty, not
UTF-8 (a UTF-8 BOM is accepted), nested too deep, a number too long; never a 500, never a RecursionError.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from shared.contracts.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_NUMBER_CHARS, json_depth_exceeds

UTF8_BOM = b"\xef\xbb\xbf"
_JSON_TYPES = ("application/json",)


class BadBody(Exception):
    """A body refused before validation: the status (400, 413, 415) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _TooLarge(Exception):
    """Raised into the app by the receive channel once the body passes the limit."""


def too_large_message(limit: int = MAX_BODY_BYTES) -> str:
    return f"request body larger than {limit} bytes (MAX_BODY_BYTES)"


class BodyLimit:
    """ASGI middleware: a body over the limit is answered 413 without reading (or buffering) the rest."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1 or (declared is not None and declared > self.limit):
            status = 400 if declared == -1 else 413
            error = "invalid Content-Length header" if status == 400 else too_large_message(self.limit)
            await _answer(send, status, error)
            return
        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> dict:
            if state["exceeded"]:
                raise _TooLarge()
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["exceeded"] = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: dict) -> None:
            if state["exceeded"]:
                return  # whatever the app answers to a body cut off is replaced by the 413
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not state["exceeded"]:
                raise
        if state["exceeded"] and not state["started"]:
            await _answer(send, 413, too_large_message(self.limit))


def _content_length(scope: dict) -> int | None:
    """The declared length, None when absent, -1 when not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


async def _answer(send: Any, status: int, error: str) -> None:
    body = json.dumps({"error": error, "problems": []}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def json_body(request: Request, required: bool = True) -> Any:
    """The request's JSON body as data (None when absent and not required), or BadBody saying why."""
    _check_content_type(request.headers.get("content-type"))
    raw = await request.body()
    if not raw.strip():
        if required:
            raise BadBody(400, "empty request body; send the request as a JSON object")
        return None
    return parse_json(decode_utf8(raw, "request body"), "request body")


def decode_utf8(raw: bytes, what: str) -> str:
    """Text of UTF-8 bytes, a leading BOM dropped; BadBody (400) naming the encoding problem."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise BadBody(400, f"{what} is UTF-16 (it starts with a UTF-16 byte order mark); use UTF-8")
    try:
        return raw.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(
            400, f"{what} is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); use UTF-8"
        ) from exc


def parse_json(text: str, what: str) -> Any:
    """Data of a JSON document within MAX_JSON_DEPTH and MAX_NUMBER_CHARS; BadBody (400) naming the problem."""
    if json_depth_exceeds(text):
        raise BadBody(400, f"{what} is nested more than {MAX_JSON_DEPTH} levels deep (MAX_JSON_DEPTH)")
    try:
        return json.loads(text, parse_int=_number(int), parse_float=_number(float), parse_constant=_no_constant)
    except _NumberTooLong as exc:
        raise BadBody(
            400, f"{what} has a number of {exc.chars} characters; at most {MAX_NUMBER_CHARS} (MAX_NUMBER_CHARS)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise BadBody(
            400, f"{what}: malformed JSON at character {exc.pos} (line {exc.lineno} column {exc.colno}): {exc.msg}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, or anything the parser still refuses
        raise BadBody(400, f"{what} is not valid JSON: {exc}") from exc


class _NumberTooLong(ValueError):
    def __init__(self, chars: int) -> None:
        super().__init__(chars)
        self.chars = chars


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise _NumberTooLong(len(text))
        return kind(text)

    return parse


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_content_type(header: str | None) -> None:
    if header is None:
        return  # a client that names no type gets its body read as JSON
    media, _, params = header.partition(";")
    media = media.strip().lower()
    if media not in _JSON_TYPES and not media.endswith("+json"):
        raise BadBody(415, f"Content-Type {media!r} is not supported; send application/json")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise BadBody(415, f"charset {value.strip()!r} is not supported; send the body as UTF-8")
