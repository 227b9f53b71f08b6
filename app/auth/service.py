"""Account rules: signup, login, API keys. Services flush; the caller commits."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth import repository
from app.auth.models import ApiKey, User
from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.errors import AppError, NotFound
from app.model_base import utcnow

API_KEY_PREFIX = "ib_"
API_KEY_DISPLAY_LENGTH = 11  # "ib_" + 8 characters: enough to tell keys apart
# Writing last_used_at on every call would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# One message whether the email or the password was wrong: no account enumeration.
INVALID_CREDENTIALS_MESSAGE = "The email or password is incorrect."


def normalize_email(email: str) -> str:
    return email.strip().lower()


# --- accounts -----------------------------------------------------------------------
def sign_up(session: Session, email: str, password: str) -> User:
    email = normalize_email(email)
    if repository.user_by_email(session, email) is not None:
        raise _email_taken()
    user = User(email=email, password_hash=hash_password(password))
    try:
        # A savepoint, so a racing signup's unique violation leaves the transaction usable.
        with session.begin_nested():
            repository.add(session, user)
    except IntegrityError:
        raise _email_taken() from None
    return user


def _email_taken() -> AppError:
    return AppError("email_taken", "An account with this email already exists.", 409)


def log_in(session: Session, email: str, password: str) -> User:
    user = repository.user_by_email(session, normalize_email(email))
    if not verify_password(user.password_hash if user else None, password):
        raise AppError("invalid_credentials", INVALID_CREDENTIALS_MESSAGE, 401)
    assert user is not None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def user_for_session(session: Session, user_id: str) -> User | None:
    return repository.user_by_id(session, user_id)


# --- API keys -----------------------------------------------------------------------
def hash_api_key(key: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, user: User, name: str) -> tuple[ApiKey, str]:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        user_id=user.id, name=name, prefix=key[:API_KEY_DISPLAY_LENGTH], key_hash=hash_api_key(key)
    )
    repository.add(session, api_key)
    return api_key, key


def list_api_keys(session: Session, user: User) -> list[ApiKey]:
    return repository.api_keys_of(session, user.id)


def revoke_api_key(session: Session, user: User, key_id: str) -> None:
    api_key = repository.api_key_of(session, user.id, key_id)
    if api_key is None:
        raise NotFound("API key")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()


def user_for_api_key(session: Session, key: str) -> User | None:
    api_key = repository.active_api_key_by_hash(session, hash_api_key(key))
    if api_key is None:
        return None
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        api_key.last_used_at = now
    return repository.user_by_id(session, api_key.user_id)
