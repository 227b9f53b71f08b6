"""Webhook routes (see API.md, Webhooks to clients)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth.dependencies import CurrentUser
from app.db import SessionDep
from app.openapi import errors
from app.webhooks import repository, service
from app.webhooks.schemas import (
    DEFAULT_DELIVERIES,
    MAX_DELIVERIES,
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookEndpointOut,
)

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


@router.post("/webhooks", status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_webhook(body: WebhookCreate, user: CurrentUser, session: SessionDep) -> WebhookCreated:
    endpoint = service.register(session, user, body.url)
    return WebhookCreated(id=endpoint.id, url=endpoint.url, created_at=endpoint.created_at, secret=endpoint.secret)


@router.get("/webhooks")
def list_webhooks(user: CurrentUser, session: SessionDep) -> list[WebhookEndpointOut]:
    return [WebhookEndpointOut.model_validate(endpoint, from_attributes=True) for endpoint in repository.endpoints_of(session, user.id)]


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: str, user: CurrentUser, session: SessionDep) -> Response:
    service.delete(session, user, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/webhooks/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: str, user: CurrentUser, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES)] = DEFAULT_DELIVERIES,
) -> DeliveryList:
    rows = service.deliveries(session, user, webhook_id, limit)
    return DeliveryList(items=[DeliveryOut.model_validate(row, from_attributes=True) for row in rows])
