"""Request and response bodies of the auth routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from app.billing.schemas import SubscriptionOut
from app.credits.schemas import CreditsOut
from app.validation import Line

MIN_PASSWORD_LENGTH = 8
# Argon2 hashes any length, but an unbounded password is a cheap way to burn our CPU.
MAX_PASSWORD_LENGTH = 1024


class Credentials(BaseModel):
    email: EmailStr = Field(max_length=320)  # email-validator refuses control characters itself
    password: Line = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


class LoginCredentials(BaseModel):
    # No length rule here: a login with a short password is simply wrong (401), and
    # telling the caller about our password policy on login leaks nothing useful anyway.
    email: Line = Field(max_length=320)
    password: Line = Field(max_length=MAX_PASSWORD_LENGTH)


class SessionOut(BaseModel):
    id: str
    email: str
    csrf_token: str  # echo in X-CSRF-Token on unsafe requests made with the cookie


class ApiKeyCreate(BaseModel):
    name: Line = Field(default="API key", min_length=1, max_length=100)


class ApiKeyCreated(BaseModel):
    id: str
    name: str
    prefix: str
    key: str  # shown once; only its hash is stored


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class MeOut(BaseModel):
    id: str
    email: str
    tier: str  # "premium" with a plan in good standing or paid credits left (app/billing/entitlements.py)
    plan: str  # the plan in good standing, or "free"
    subscription: SubscriptionOut | None  # the latest subscription, whatever its status; None before any
    max_active_jobs: int
    credits: CreditsOut
