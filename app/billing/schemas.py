from __future__ import annotations

from pydantic import BaseModel, Field


class PackOut(BaseModel):
    id: str
    name: str
    credits: int
    price_cents: int
    currency: str


class PacksOut(BaseModel):
    packs: list[PackOut]
    payments_enabled: bool


class CheckoutIn(BaseModel):
    pack: str = Field(min_length=1, max_length=64)


class CheckoutOut(BaseModel):
    url: str


class WebhookOut(BaseModel):
    received: bool = True
    duplicate: bool = False
