from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.validation import Line


class PackOut(BaseModel):
    id: str
    name: str
    credits: int
    price_cents: int
    currency: str


class PacksOut(BaseModel):
    packs: list[PackOut]
    payments_enabled: bool


class PlanOut(BaseModel):
    id: str
    name: str
    price_cents: int
    currency: str
    interval: str
    credits: int  # paid credits each paid period grants
    max_active_jobs: int
    priority: int


class PlansOut(BaseModel):
    plans: list[PlanOut]
    payments_enabled: bool
    current: str  # the caller's plan in good standing, or "free"


class CheckoutIn(BaseModel):
    pack: Line = Field(min_length=1, max_length=64)


class SubscribeIn(BaseModel):
    plan: Line = Field(min_length=1, max_length=64)


class CheckoutOut(BaseModel):
    url: str


class SubscriptionOut(BaseModel):
    """The caller's subscription as Stripe's signed events last described it."""

    plan: str
    name: str | None  # None when the plan is no longer configured
    status: str  # Stripe's: active, trialing, past_due, canceled, ...
    in_good_standing: bool  # whether its benefits apply now
    renews_at: datetime | None  # the end of the paid period; None when it will not renew
    ends_at: datetime | None  # set when it is canceled at the period's end
    grace_until: datetime | None  # past due: the benefits last until then


class WebhookOut(BaseModel):
    received: bool = True
    duplicate: bool = False
