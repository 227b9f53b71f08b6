"""The OpenAPI document (/api/openapi.json) declares every answer each route can give.

Answers that a route's own rules give (402 for credits, 409 for a conflict, 410 for a lost
file) are declared at the route with `errors(...)`. Answers that come from shared machinery
are added here to every operation they apply to, read from the route itself, so a new route
gets them without anyone remembering:
- 400 for a body the JSON or form parser cannot read; 413 for any body (app/body_limit.py);
- 422 for any route with parameters or a body, in the error shape (FastAPI's default schema
  for it, HTTPValidationError, is not what the error handler sends);
- 401 where a caller is needed (app/auth/dependencies.get_caller), with the two ways to be
  one; 403 for their unsafe methods (a session cookie without the CSRF header) and for
  session-only routes; 404 for routes with ids in the path;
- 429 on the rate-limited routes (app/ratelimit.RULES);
- 503 wherever the database is used (unreachable, or too busy).
Every error has one shape: `{"error": {"code", "message", ...}}` (app/errors.py).
"""

from __future__ import annotations

import re
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field

from app.auth.dependencies import get_caller, get_session_user
from app.db import SessionDep
from app.ratelimit import RULES

# the function behind SessionDep: a route that depends on it uses the database
OPENS_SESSION = get_args(SessionDep)[1].dependency

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
DESCRIPTIONS = {
    400: "The request body could not be read (not the JSON or form it says it is), or a refused event",
    401: "Not authenticated: send the session cookie or `Authorization: Bearer <API key>`",
    402: "Not enough credits: `error.balance` and `error.needed` say how many",
    403: "Refused: a session-cookie request without the CSRF header, or an action that needs a browser session",
    404: "No such object for this caller (someone else's answers the same)",
    409: "Conflicts with the current state",
    410: "Gone: the stored file is missing",
    413: "The request body is larger than the server accepts",
    422: "Invalid input: `error.fields` names each offending field",
    429: "Too many requests or jobs at once: `Retry-After` says when to try again",
    502: "The payment provider did not answer",
    503: "Temporarily unavailable (overloaded, or a dependency is down): `Retry-After` says when to try again",
}


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable, for programs: e.g. insufficient_credits")
    message: str = Field(description="for people")


class ErrorBody(BaseModel):
    """Every error answer: `{"error": {"code", "message", ...details}}`."""

    error: ErrorInfo


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's own error answers."""
    return {status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses}


def _error_response(status: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": ERROR_REF}}}


def _example_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _calls(dependant: Dependant) -> set[Any]:
    """Every function the route depends on, however deep."""
    found, pending = set(), [dependant]
    while pending:
        current = pending.pop()
        found.add(current.call)
        pending.extend(current.dependencies)
    return found


def shared_statuses(route: RouteContext) -> set[int]:
    """The error statuses that shared machinery can answer on `route` (see the module doc)."""
    calls = _calls(route.dependant)
    path = route.path or ""
    methods = route.methods or set()
    body = route.body_field is not None
    statuses: set[int] = set()
    if body:
        statuses |= {400, 413, 422}  # 400: a body that is not the JSON or form it claims to be
    if get_flat_params(route.dependant):
        statuses.add(422)
    if "{" in path:
        statuses.add(404)
    if get_caller in calls:
        statuses.add(401)
        if methods & UNSAFE_METHODS or get_session_user in calls:
            statuses.add(403)
    if any(rule.method in methods and rule.path.match(_example_path(path)) for rule in RULES):
        statuses.add(429)
    if OPENS_SESSION in calls:
        statuses.add(503)
    return statuses


def _add_shared(schema: dict[str, Any], route: RouteContext) -> None:
    operations = schema["paths"].get(route.path_format, {})
    calls = _calls(route.dependant)
    for method in route.methods or ():
        operation = operations.get(method.lower())
        if operation is None:
            continue
        responses = operation.setdefault("responses", {})
        for status in sorted(shared_statuses(route)):
            current = responses.get(str(status))
            if current is None or status == 422:  # 422: ours, not FastAPI's HTTPValidationError
                responses[str(status)] = _error_response(status)
        if get_caller in calls:
            operation["security"] = [{"session": []}] if get_session_user in calls else [{"apiKey": []}, {"session": []}]


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         webhooks=app.webhooks.routes)
    for operations in schema.get("webhooks", {}).values():  # what clients answer: no error shape of ours
        for operation in operations.values():
            operation["responses"] = {code: answer for code, answer in operation["responses"].items() if code != "422"}
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_body.pop("$defs", {}))
    schemas["ErrorBody"] = error_body
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key from POST /api/v1/api-keys"},
        "session": {"type": "apiKey", "in": "cookie", "name": "imagebooth_session",
                    "description": "the browser's session; unsafe methods also need the X-CSRF-Token header"},
    }
    for route in iter_route_contexts(app.routes):  # routers included in the app are walked too
        if isinstance(route.original_route, APIRoute) and route.include_in_schema and (route.path or "").startswith("/api/"):
            _add_shared(schema, route)
    return schema


def install(app: FastAPI) -> None:
    """Serve `build(app)` as the app's OpenAPI document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
