"""Webhook routes (see API.md, Webhooks to clients)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from app.auth.dependencies import CurrentUser
from app.db import SessionDep
from app.openapi import errors
from app.validation import WebhookId
from app.webhooks import repository, service, signing
from app.webhooks.schemas import (
    DEFAULT_DELIVERIES,
    MAX_DELIVERIES,
    DeliveryList,
    DeliveryOut,
    FinetuneEvent,
    GenerationEvent,
    WebhookCreate,
    WebhookCreated,
    WebhookEndpointOut,
)

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
# The events ImageBooth sends, for the document's "webhooks" section (never served here).
events = APIRouter(tags=["webhooks"])
Signature = Annotated[str, Header(alias=signing.HEADER, description="t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                                  '"<t>.<body>" keyed with the endpoint\'s secret>')]
RECEIVED: dict[int | str, dict[str, Any]] = {200: {"description": "Any 2xx within the timeout counts as delivered; anything else (a 3xx too: "
                                 "redirects are not followed) is retried with back-off for a day."}}


@router.post("/webhooks", status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_webhook(body: WebhookCreate, user: CurrentUser, session: SessionDep) -> WebhookCreated:
    endpoint = service.register(session, user, body.url)
    return WebhookCreated(id=endpoint.id, url=endpoint.url, created_at=endpoint.created_at, secret=endpoint.secret)


@router.get("/webhooks")
def list_webhooks(user: CurrentUser, session: SessionDep) -> list[WebhookEndpointOut]:
    return [WebhookEndpointOut.model_validate(endpoint, from_attributes=True) for endpoint in repository.endpoints_of(session, user.id)]


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: WebhookId, user: CurrentUser, session: SessionDep) -> Response:
    service.delete(session, user, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/webhooks/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: WebhookId, user: CurrentUser, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES)] = DEFAULT_DELIVERIES,
) -> DeliveryList:
    rows = service.deliveries(session, user, webhook_id, limit)
    return DeliveryList(items=[DeliveryOut.model_validate(row, from_attributes=True) for row in rows])


@events.post("generation", summary="A generation ended", responses=RECEIVED)
def generation_event(event: GenerationEvent, signature: Signature) -> None:
    """POSTed to every endpoint of the job's owner when a generation ends."""


@events.post("finetune", summary="A fine-tune ended", responses=RECEIVED)
def finetune_event(event: FinetuneEvent, signature: Signature) -> None:
    """POSTed to every endpoint of the job's owner when a fine-tune ends."""
