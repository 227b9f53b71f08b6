"""The caller's credit ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.dependencies import CurrentUser
from app.credits import service
from app.credits.repository import ActivityRow
from app.credits.schemas import ActivityOut, ActivityPage, LedgerEntryOut, LedgerPage
from app.db import SessionDep
from app.validation import Line

router = APIRouter(prefix="/api/v1", tags=["credits"])


@router.get("/credits/ledger")
def credit_ledger(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[Line | None, Query(max_length=200)] = None,
) -> LedgerPage:
    entries, next_cursor = service.ledger_page(session, user, limit, cursor)
    return LedgerPage(
        items=[LedgerEntryOut.model_validate(entry, from_attributes=True) for entry in entries],
        next_cursor=next_cursor,
    )


@router.get("/credits/activity")
def credit_activity(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[Line | None, Query(max_length=200)] = None,
) -> ActivityPage:
    """The ledger grouped as people read it: one line per job, newest first."""
    rows, next_cursor = service.activity_page(session, user, limit, cursor)
    return ActivityPage(items=[_activity(row) for row in rows], next_cursor=next_cursor)


def _activity(row: ActivityRow) -> ActivityOut:
    job = row.job
    return ActivityOut(
        id=row.key, kind="job" if job else "entry", reason=row.reason, reference=row.reference, note=row.note,
        amount=row.amount, free=row.free, held=row.held if job else None, spent=row.spent if job else None,
        settled=row.settled if job else None, created_at=row.at,
    )
