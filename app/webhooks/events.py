"""Events, written where a job ends: one delivery per endpoint of the job's owner.

Called inside the transaction that moves the job into its final state (app/jobs/lifecycle.py),
so the event is committed exactly when the state is, and a crash cannot lose one or send one
for a state that rolled back. The body is fixed here: every attempt sends the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from app.jobs import repository as job_repository
from app.jobs.kinds import JobKind
from app.model_base import JobStatus, new_id, utcnow
from app.webhooks import repository
from app.webhooks.models import WebhookDelivery

EVENT_PREFIX = "evt_"


def job_ended(session: Session, kind: JobKind, job_id: str, status: JobStatus) -> int:
    """`<kind>.<status>` (e.g. generation.succeeded) with the job as it now is, for its owner."""
    job = job_repository.get(session, kind.model, job_id)
    if job is None or not repository.endpoint_count(session, job.user_id):
        return 0  # most owners have no webhook: no view is built for them
    session.expire(job)  # the final state was written by a statement: read it (and the images) back
    data = kind.view(job).model_dump(mode="json")
    return record(session, job.user_id, f"{kind.name}.{status.value}", data)


def record(session: Session, user_id: str, event_type: str, data: dict[str, Any]) -> int:
    """Queue `event_type` with `data` (the job as the API shows it) for each of the user's
    endpoints; how many deliveries were queued."""
    endpoints = repository.endpoints_of(session, user_id)
    if not endpoints:
        return 0
    event_id, now = new_id(), utcnow()
    body = json.dumps({"id": EVENT_PREFIX + event_id, "type": event_type, "created": int(now.timestamp()), "data": data},
                      separators=(",", ":"), ensure_ascii=False)
    for endpoint in endpoints:
        session.add(WebhookDelivery(endpoint_id=endpoint.id, event_id=event_id, event_type=event_type, body=body,
                                    next_attempt_at=now, created_at=now))
    return len(endpoints)
