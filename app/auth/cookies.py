"""The signed session cookie and the CSRF double-submit cookie.

CSRF choice (documented in the README): a random token lives in a readable cookie
(`imagebooth_csrf`). Unsafe requests authenticated by the session cookie must echo it -
browser forms in a hidden `csrf_token` field, scripts in an `X-CSRF-Token` header. Another
site can make the browser send our cookies but cannot read them, so it cannot echo the
token. Requests authenticated by `Authorization: Bearer` carry no ambient credentials and
need no token.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.config import Settings

SESSION_COOKIE = "imagebooth_session"
CSRF_COOKIE = "imagebooth_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SESSION_SALT = "imagebooth.session.v1"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret(), salt=_SESSION_SALT)


def set_session_cookie(response: Response, user_id: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(settings).dumps({"u": user_id}),
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=settings.is_production,
        path="/",
    )


def session_user_id(request: Request, settings: Settings) -> str | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        data = _serializer(settings).loads(token, max_age=settings.session_max_age_s)
    except BadSignature:  # also covers expiry (SignatureExpired is a subclass)
        return None
    user_id = data.get("u") if isinstance(data, dict) else None
    return user_id if isinstance(user_id, str) else None


def clear_auth_cookies(response: Response, settings: Settings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", httponly=name == SESSION_COOKIE,
                               samesite="lax", secure=settings.is_production)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def issue_csrf_token(response: Response, settings: Settings, token: str | None = None) -> str:
    token = token or new_csrf_token()
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=settings.session_max_age_s,
        httponly=False,  # pages' scripts read it to echo it in the header
        samesite="lax",
        secure=settings.is_production,
        path="/",
    )
    return token


def csrf_cookie(request: Request) -> str | None:
    return request.cookies.get(CSRF_COOKIE)


def csrf_token_matches(request: Request, submitted: str | None) -> bool:
    expected = csrf_cookie(request)
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
