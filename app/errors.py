"""One error family, rendered by one handler: JSON under /api, a page for the browser.

Clients never see a stack trace: unexpected exceptions become a generic 500; an unreachable
database, an exhausted pool and a canceled (too slow) statement a 503 `service_unavailable`
with Retry-After.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    """An error the client can act on: a stable `code`, a readable `message`, a status."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class NotFound(AppError):
    def __init__(self, what: str = "resource") -> None:
        # Another user's object answers exactly like a missing one.
        super().__init__("not_found", f"{what.capitalize()} not found.", 404)


class ServiceUnavailable(AppError):
    def __init__(
        self, message: str = "The service is temporarily unavailable; try again shortly.", retry_after_s: int = 5
    ) -> None:
        super().__init__("service_unavailable", message, 503, headers={"Retry-After": str(retry_after_s)})


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path in ("/healthz", "/readyz"):
        return True
    return "text/html" not in request.headers.get("accept", "")


class ErrorJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        # ASCII-escaped: a message that quotes the caller's input stays encodable even
        # when that input was not (a lone surrogate).
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def render_error(request: Request, error: AppError) -> Response:
    if wants_json(request):
        return ErrorJSONResponse(error.body(), status_code=error.status, headers=error.headers)
    # Imported here: the page renderer needs the app's templates, which import this module.
    from app.pages.rendering import render_error_page

    return render_error_page(request, error)


# --- handlers -----------------------------------------------------------------------
# Starlette types each handler as taking any Exception; each is registered for one class.
async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return render_error(request, exc)


# Codes for statuses whose standard phrase reads badly as an identifier.
_CODE_FOR_STATUS = {413: "payload_too_large", 500: "internal_error", 503: "service_unavailable"}


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    code = _CODE_FOR_STATUS.get(exc.status_code) or status.phrase.lower().replace(" ", "_").replace("-", "_")
    message = exc.detail if isinstance(exc.detail, str) else status.phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return render_error(request, AppError(code, message, exc.status_code, headers=headers))


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's 405 names only the first
    route's, and GET and POST of one path are often two routes)."""
    from fastapi.routing import iter_route_contexts

    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(request.url.path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    from app.validation import ID_NOT_FOUND

    for item in exc.errors():
        if item.get("type") == ID_NOT_FOUND:  # an id that cannot exist names nothing: 404
            return render_error(request, NotFound(item["ctx"]["what"]))
    return render_error(request, validation_error(exc.errors()))


def validation_error(errors: Sequence[Any]) -> AppError:
    """A 422 whose message names every offending field (pydantic's errors() items)."""
    fields = [_describe_field_error(item) for item in errors]
    message = "; ".join(f"{item['field']}: {item['message']}" for item in fields)
    return AppError("validation_error", message, 422, fields=fields)


def _describe_field_error(item: dict[str, Any]) -> dict[str, str]:
    # ("body", "email") -> "email"; a body that is not an object at all -> "body".
    location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(location) or "body"
    message = str(item.get("msg", "is invalid"))
    if item.get("type") == "missing":
        message = "is required"
    elif item.get("type") == "json_invalid":
        field, message = "body", "is not valid JSON"
    return {"field": field, "message": message}


async def _database_unreachable(request: Request, exc: Exception) -> Response:
    if _is_overload(exc):
        log.warning("database overloaded on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
        return render_error(request, ServiceUnavailable("The database is busy; try again shortly."))
    log.error("database unreachable: %s", exc.__class__.__name__, exc_info=exc)
    return render_error(request, ServiceUnavailable("The database is unreachable; try again shortly."))


def _is_overload(exc: Exception) -> bool:
    """A pool that had no connection in time, a statement canceled by statement_timeout
    (SQLSTATE 57014) or SQLite's busy timeout: the database is there, only too busy."""
    if isinstance(exc, PoolTimeout):
        return True
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlstate", None) == "57014" or "database is locked" in str(original)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return render_error(request, AppError("internal_error", "Something went wrong on our side.", 500))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_unreachable)
    app.add_exception_handler(InterfaceError, _database_unreachable)
    app.add_exception_handler(PoolTimeout, _database_unreachable)
    app.add_exception_handler(Exception, _unexpected)
