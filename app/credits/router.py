"""The caller's credit ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.dependencies import CurrentUser
from app.credits import service
from app.credits.schemas import LedgerEntryOut, LedgerPage
from app.db import SessionDep

router = APIRouter(prefix="/api/v1", tags=["credits"])


@router.get("/credits/ledger")
def credit_ledger(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> LedgerPage:
    entries, next_cursor = service.ledger_page(session, user, limit, cursor)
    return LedgerPage(
        items=[LedgerEntryOut.model_validate(entry, from_attributes=True) for entry in entries],
        next_cursor=next_cursor,
    )
