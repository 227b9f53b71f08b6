"""The parts of Stripe's signed events that billing reads, as strict models.

A signed event is still input: a field of the wrong type, an absurd number or a NUL byte must
become a clear 400 (logged), never a 500 from Python or the database. Only the fields read
are declared; everything else Stripe sends is ignored. Both the pre-2025 and the 2025
("basil") shapes are accepted where Stripe moved a field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, StringConstraints

# Stripe ids and the few strings stored: printable, bounded.
StripeId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_\-.:]+$")]
Cents = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
Timestamp = Annotated[StrictInt, Field(ge=0, le=2**40)]
# Stripe's metadata: string keys and string values, as set when the checkout was created
# (without NUL, which Postgres refuses in text: a value may end up in a stored note).
_MetadataText = Annotated[StrictStr, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")]
Metadata = dict[_MetadataText, _MetadataText]


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EventData(_Object):
    object: dict[str, Any]


class Event(_Object):
    id: StripeId
    type: Annotated[StrictStr, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z0-9_.]+$")]
    created: Timestamp
    data: EventData


class CheckoutSession(_Object):
    id: StripeId
    mode: StrictStr | None = None
    payment_status: StrictStr | None = None
    client_reference_id: StrictStr | None = None
    metadata: Metadata = Field(default_factory=dict)
    payment_intent: StripeId | None = None
    subscription: StripeId | None = None
    customer: StripeId | None = None
    amount_total: Cents | None = None
    currency: Annotated[StrictStr, StringConstraints(max_length=8, pattern=r"^[a-z]*$")] | None = None


class SubscriptionDetails(_Object):
    subscription: StripeId | None = None
    metadata: Metadata = Field(default_factory=dict)


class InvoiceParent(_Object):
    subscription_details: SubscriptionDetails | None = None


class Period(_Object):
    start: Timestamp | None = None
    end: Timestamp | None = None


class InvoiceLine(_Object):
    period: Period | None = None


class InvoiceLines(_Object):
    data: list[InvoiceLine] = Field(default_factory=list)


class Invoice(_Object):
    id: StripeId
    customer: StripeId | None = None
    subscription: StripeId | None = None  # before the 2025 API versions
    subscription_details: SubscriptionDetails | None = None  # likewise
    parent: InvoiceParent | None = None  # 2025 versions: parent.subscription_details
    lines: InvoiceLines | None = None
    period_end: Timestamp | None = None

    @property
    def details(self) -> SubscriptionDetails:
        moved = self.parent.subscription_details if self.parent else None
        return moved or self.subscription_details or SubscriptionDetails()

    @property
    def subscription_id(self) -> str | None:
        return self.subscription or self.details.subscription

    @property
    def metadata(self) -> dict[str, str]:
        return self.details.metadata

    @property
    def paid_through(self) -> int | None:
        """The end of the period this invoice pays for: its subscription line's period
        (the invoice's own period_end is the previous period on renewals)."""
        ends = [line.period.end for line in (self.lines.data if self.lines else []) if line.period and line.period.end]
        return max(ends) if ends else self.period_end


class Price(_Object):
    id: StripeId | None = None


class SubscriptionItem(_Object):
    price: Price | None = None
    current_period_end: Timestamp | None = None  # 2025 versions moved it here


class SubscriptionItems(_Object):
    data: list[SubscriptionItem] = Field(default_factory=list)


class Subscription(_Object):
    id: StripeId
    status: Annotated[StrictStr, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]
    customer: StripeId | None = None
    metadata: Metadata = Field(default_factory=dict)
    cancel_at_period_end: StrictBool = False
    current_period_end: Timestamp | None = None  # before the 2025 versions
    items: SubscriptionItems | None = None

    @property
    def period_end(self) -> int | None:
        ends = [item.current_period_end for item in (self.items.data if self.items else []) if item.current_period_end]
        return max(ends) if ends else self.current_period_end

    @property
    def price_ids(self) -> list[str]:
        return [item.price.id for item in (self.items.data if self.items else []) if item.price and item.price.id]


class Charge(_Object):
    id: StripeId
    payment_intent: StripeId | None = None
    amount: Cents
    amount_refunded: Cents = 0


class Dispute(_Object):
    id: StripeId
    charge: StripeId | None = None
    payment_intent: StripeId | None = None
    amount: Cents
    reason: Annotated[StrictStr, StringConstraints(max_length=64, pattern=r"^[a-z_]*$")] | None = None
