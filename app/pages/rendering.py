"""Server-rendered pages: the templates, the CSRF token every form carries, error pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.auth import cookies
from app.config import REPO_ROOT, get_settings

if TYPE_CHECKING:
    from app.errors import AppError

TEMPLATES_DIR = REPO_ROOT / "templates"
STATIC_DIR = REPO_ROOT / "static"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def count(number: int, noun: str, plural: str | None = None) -> str:
    """`{{ n | count("credit") }}`: "1 credit", "2 credits" (static/app.js has the same for scripts)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


templates.env.filters["count"] = count


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    # Every page can hold a form, so every page makes sure a CSRF token exists.
    existing = cookies.csrf_cookie(request)
    token = existing or cookies.new_csrf_token()
    response = templates.TemplateResponse(
        request, template, {"csrf_token": token, **context}, status_code=status_code
    )
    if existing is None:
        cookies.issue_csrf_token(response, get_settings(), token)
    return response


def render_error_page(request: Request, error: AppError) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        "error.html",
        {"status": error.status, "code": error.code, "message": error.message, "csrf_token": ""},
        status_code=error.status,
    )
    response.headers.update(error.headers)
    return response
