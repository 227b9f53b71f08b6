"""Who is calling: `CurrentUser` (session cookie or API key) and `SessionUser` (cookie only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request

from app.auth import cookies, service
from app.auth.models import User
from app.config import get_settings
from app.db import SessionDep
from app.errors import AppError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    user: User
    via: Literal["session", "api_key"]


def _unauthenticated(message: str = "Log in or send an API key (Authorization: Bearer <key>).") -> AppError:
    return AppError("not_authenticated", message, 401, headers={"WWW-Authenticate": "Bearer"})


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("The Authorization header must be 'Bearer <API key>'.")
    return token.strip()


def get_caller(request: Request, session: SessionDep) -> Caller:
    # 1. An API key, when one is sent, decides alone: a bad key is 401 even with a cookie.
    token = _bearer_token(request)
    if token is not None:
        user = service.user_for_api_key(session, token)
        if user is None:
            raise _unauthenticated("The API key is invalid or has been revoked.")
        return Caller(user, "api_key")
    # 2. The session cookie, which the browser sends on its own: unsafe methods must
    #    prove they come from our pages (CSRF double-submit).
    settings = get_settings()
    user_id = cookies.session_user_id(request, settings)
    user = service.user_for_session(session, user_id) if user_id else None
    if user is None:
        raise _unauthenticated()
    if request.method not in SAFE_METHODS and not cookies.csrf_token_matches(
        request, request.headers.get(cookies.CSRF_HEADER)
    ):
        raise AppError(
            "csrf_failed",
            f"Requests authenticated by the session cookie must send the {cookies.CSRF_HEADER} "
            f"header with the value of the {cookies.CSRF_COOKIE} cookie.",
            403,
        )
    return Caller(user, "session")


def get_current_user(caller: Annotated[Caller, Depends(get_caller)]) -> User:
    return caller.user


def get_session_user(caller: Annotated[Caller, Depends(get_caller)]) -> User:
    if caller.via != "session":
        raise AppError("session_required", "This action needs a logged-in browser session.", 403)
    return caller.user


def get_optional_user(request: Request, session: SessionDep) -> User | None:
    """For pages: the logged-in user, or None (no CSRF check: pages check their forms)."""
    user_id = cookies.session_user_id(request, get_settings())
    return service.user_for_session(session, user_id) if user_id else None


CurrentUser = Annotated[User, Depends(get_current_user)]
SessionUser = Annotated[User, Depends(get_session_user)]
OptionalUser = Annotated[User | None, Depends(get_optional_user)]
