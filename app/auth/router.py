"""Auth and account routes (JSON). Parse, call the service, render."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.auth import cookies, service
from app.auth.dependencies import CurrentUser, SessionUser
from app.auth.models import User
from app.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    Credentials,
    LoginCredentials,
    MeOut,
    SessionOut,
)
from app.billing import service as billing_service
from app.config import get_settings
from app.credits import service as credits_service
from app.credits.schemas import CreditsOut
from app.db import SessionDep
from app.openapi import errors
from app.ratelimit import limit_account
from app.validation import ApiKeyId

router = APIRouter(prefix="/api/v1", tags=["auth"])


def _start_session(response: Response, user: User) -> SessionOut:
    settings = get_settings()
    cookies.set_session_cookie(response, user.id, settings)
    # A fresh CSRF token per login: a token planted before login is worthless after it.
    csrf_token = cookies.issue_csrf_token(response, settings)
    return SessionOut(id=user.id, email=user.email, csrf_token=csrf_token)


@router.post("/auth/signup", status_code=status.HTTP_201_CREATED, responses=errors(409))
def signup(body: Credentials, request: Request, session: SessionDep, response: Response) -> SessionOut:
    limit_account(request, body.email)
    user = service.sign_up(session, body.email, body.password)
    return _start_session(response, user)


@router.post("/auth/login", responses=errors(401))
def login(body: LoginCredentials, request: Request, session: SessionDep, response: Response) -> SessionOut:
    limit_account(request, body.email)
    user = service.log_in(session, body.email, body.password)
    return _start_session(response, user)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout() -> Response:
    # Needs no authentication (and so no CSRF token): it only clears this browser's
    # cookies, which is harmless whoever triggers it.
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    cookies.clear_auth_cookies(response, get_settings())
    return response


@router.get("/me")
def me(user: CurrentUser, session: SessionDep) -> MeOut:
    credits = credits_service.summary(session, user)
    rights, subscription = billing_service.standing(session, user)
    return MeOut(
        id=user.id,
        email=user.email,
        tier=rights.tier.value,
        plan=rights.plan.id if rights.plan else "free",
        subscription=subscription,
        max_active_jobs=rights.max_active_jobs,
        credits=CreditsOut.model_validate(credits, from_attributes=True),
    )


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
def create_api_key(user: SessionUser, session: SessionDep, body: ApiKeyCreate | None = None) -> ApiKeyCreated:
    api_key, key = service.create_api_key(session, user, (body or ApiKeyCreate()).name)
    return ApiKeyCreated(id=api_key.id, name=api_key.name, prefix=api_key.prefix, key=key)


@router.get("/api-keys")
def list_api_keys(user: CurrentUser, session: SessionDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(key, from_attributes=True) for key in service.list_api_keys(session, user)]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(key_id: ApiKeyId, user: CurrentUser, session: SessionDep) -> Response:
    service.revoke_api_key(session, user, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
