"""Every table, importable from one place (Alembic's metadata and cross-domain code)."""

from app.auth.models import ApiKey, User
from app.billing.models import BillingAccount, PackPayment, StripeEvent
from app.credits.models import CreditBucket, CreditLedgerEntry, LedgerReason
from app.generation.models import Generation, Image
from app.model_base import Base, JobStatus
from app.personalization.models import (
    Finetune,
    FinetunePhase,
    ModelKind,
    Subject,
    SubjectPhoto,
    TrainedModel,
)
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Base",
    "BillingAccount",
    "CreditBucket",
    "CreditLedgerEntry",
    "DeliveryStatus",
    "Finetune",
    "FinetunePhase",
    "Generation",
    "Image",
    "JobStatus",
    "LedgerReason",
    "ModelKind",
    "PackPayment",
    "StripeEvent",
    "Subject",
    "SubjectPhoto",
    "TrainedModel",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
