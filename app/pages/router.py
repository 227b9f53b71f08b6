"""Browser pages, part one: sign up, log in and log out.

Plain HTML forms (no script needed); each carries the CSRF token from the cookie. The
pages of the product itself (create, history, personalize, credits, API keys) are in
`app.pages.product` and are included here, so `create_app` mounts one pages router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.auth import cookies, service
from app.auth.dependencies import OptionalUser
from app.auth.models import User
from app.auth.schemas import Credentials
from app.config import get_settings
from app.db import SessionDep
from app.errors import AppError, validation_error
from app.pages.product import router as product_router
from app.pages.rendering import STATIC_DIR, render
from app.ratelimit import limit_account
from app.validation import Line

router = APIRouter(include_in_schema=False)
router.include_router(product_router)
FormField = Annotated[Line, Form()]


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    # Browsers ask for /favicon.ico whatever the page links; a day of caching is plenty.
    return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})


def _check_form_csrf(request: Request, submitted: str) -> None:
    if not cookies.csrf_token_matches(request, submitted):
        raise AppError("csrf_failed", "The form expired or did not come from this site; reload and try again.", 403)


def _logged_in_redirect(user_id: str) -> Response:
    response = RedirectResponse("/", status_code=303)
    settings = get_settings()
    cookies.set_session_cookie(response, user_id, settings)
    cookies.issue_csrf_token(response, settings)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, user: OptionalUser) -> Response:
    if user is not None:
        return RedirectResponse("/", status_code=303)
    return render(request, "auth.html", mode="login")


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, user: OptionalUser) -> Response:
    if user is not None:
        return RedirectResponse("/", status_code=303)
    return render(request, "auth.html", mode="signup")


@router.post("/login")
def login_form(
    request: Request, session: SessionDep, email: FormField, password: FormField, csrf_token: FormField
) -> Response:
    return _submit_auth_form(request, "login", csrf_token, email, lambda: service.log_in(session, email, password))


@router.post("/signup")
def signup_form(
    request: Request, session: SessionDep, email: FormField, password: FormField, csrf_token: FormField
) -> Response:
    def sign_up() -> User:
        credentials = Credentials(email=email, password=password)  # the API's own rules
        return service.sign_up(session, credentials.email, credentials.password)

    return _submit_auth_form(request, "signup", csrf_token, email, sign_up)


def _submit_auth_form(
    request: Request, mode: str, csrf_token: str, email: str, authenticate: Callable[[], User]
) -> Response:
    _check_form_csrf(request, csrf_token)
    limit_account(request, email)
    try:
        user = authenticate()
    except ValidationError as invalid:
        error = validation_error(invalid.errors())
    except AppError as refused:
        error = refused
    else:
        return _logged_in_redirect(user.id)
    # The form again, with the reasons next to their fields and the email kept, at the
    # API's status code.
    field_errors = _field_errors(error)
    return render(request, "auth.html", error.status, mode=mode, email=email, field_errors=field_errors,
                  error=None if field_errors else error.message)


def _field_errors(error: AppError) -> dict[str, str]:
    if error.code == "email_taken":
        return {"email": error.message}
    found: dict[str, str] = {}
    for item in error.details.get("fields", []):
        name = item["field"] if item["field"] in ("email", "password") else "email"
        message = _readable(item["field"], item["message"])
        found[name] = f"{found[name]} {message}" if name in found else message
    return found


def _readable(field: str, message: str) -> str:
    # pydantic speaks of strings and values; people speak of passwords and addresses.
    if field == "password" and "at least" in message:
        return "Use at least 8 characters."
    if field == "email" and message != "is required":
        return "Enter an email address like name@example.com."
    return f"{field.capitalize()} {message}."


@router.post("/logout")
def logout_form(request: Request, csrf_token: FormField) -> Response:
    _check_form_csrf(request, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    cookies.clear_auth_cookies(response, get_settings())
    return response
