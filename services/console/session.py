"""Who is at the browser: the bearer token given at the login page, kept in an HttpOnly cookie and checked on
every request by the project's Guard (so the roles are the same as everywhere else)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from shared.runtime.auth import AuthError, Guard, Principal, Role

COOKIE = "countermand_session"
MAX_FORM_BYTES = 256 * 1024


class LoginNeeded(Exception):
    """No valid session: the browser is sent to the login page with `message`."""

    def __init__(self, message: str, back_to: str = "/") -> None:
        super().__init__(message)
        self.message = message
        self.back_to = back_to


class Forbidden(Exception):
    """A signed-in user without the role a page or action needs."""


@dataclass(frozen=True)
class Session:
    """A signed-in user: the principal and the token the console forwards to the other services."""

    principal: Principal
    token: str | None

    @property
    def subject(self) -> str:
        return self.principal.subject

    def has(self, *roles: Role) -> bool:
        return bool(self.principal.roles & set(roles))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def session_of(guard: Guard, request: Request) -> Session:
    """The request's session; LoginNeeded when there is none or its token no longer holds (expired, revoked)."""
    if guard.settings.mode == "off":
        return Session(guard.authenticate(None, None), None)
    token = request.cookies.get(COOKIE)
    back_to = request.url.path
    if not token:
        raise LoginNeeded("Sign in to continue.", back_to)
    try:
        return Session(guard.authenticate(f"Bearer {token}", None), token)
    except AuthError as exc:
        if "expired" in exc.reason:
            raise LoginNeeded("Your session expired: sign in again with a fresh token.", back_to) from exc
        raise LoginNeeded(f"Your session is no longer valid ({exc.reason}): sign in again.", back_to) from exc


def requires(session: Session, *roles: Role) -> None:
    if not session.has(*roles):
        raise Forbidden(f"this needs the role {' or '.join(sorted(roles))}; you are signed in as {session.subject}")


class BadForm(Exception):
    """A form the console cannot read (too large, an upload that is not text): `field` names what is wrong."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


async def form_of(request: Request) -> dict[str, str]:
    """A form body as field -> value (the first of each), bounded in size: URL-encoded, or multipart (a browser
    without script uploading a file), where a non-empty file field's value is the file's text."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise BadForm("(form)", f"the form is larger than {MAX_FORM_BYTES // 1024} KiB", 413)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _multipart(request)
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


async def _multipart(request: Request) -> dict[str, str]:
    try:
        form = await request.form(max_files=4, max_fields=16, max_part_size=MAX_FORM_BYTES)
    except (HTTPException, ValueError) as exc:
        raise BadForm("(form)", f"not a readable multipart form ({getattr(exc, 'detail', exc)})") from exc
    fields: dict[str, str] = {}
    try:
        for name, value in form.multi_items():
            if name in fields:
                continue
            if isinstance(value, UploadFile):
                data = await value.read()
                if not data:  # a file field left empty
                    continue
                try:
                    fields[name] = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise BadForm(name, f"the uploaded file {value.filename!r} is not UTF-8 text") from exc
            else:
                fields[name] = value
    finally:
        await form.close()
    return fields


def same_origin(request: Request) -> bool:
    """A state-changing request comes from the console's own pages (its Origin, when sent, is the console)."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


def local_path(target: str | None) -> str:
    """Where to go after signing in: a path of the console only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def login_url(message: str, back_to: str) -> str:
    return f"/login?message={quote(message)}&next={quote(local_path(back_to))}"
