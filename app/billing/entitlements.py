"""What an account is entitled to, by one rule that /me, the job limit and (later) the
scheduler all read.

    premium  = a plan in good standing, or paid credits left (bought, granted or a plan's)
    free     = everything else

A plan is in good standing while Stripe calls its subscription active (or trialing) and its
paid period (plus the grace period) has not run out, and while past due until the grace
period set by the failed payment ends. It grants its own `max_active_jobs` and `priority`;
paid credits alone grant the premium job limit and CREDITS_PRIORITY; free work runs at
FREE_PRIORITY. The job layer reads `priority` when it queues a job (higher runs first).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.billing import repository
from app.billing.models import BillingAccount
from app.config import Plan, get_settings
from app.credits import repository as credits_repository
from app.model_base import utcnow

FREE_PRIORITY = 0
CREDITS_PRIORITY = 1
GOOD_STANDING = frozenset({"active", "trialing"})
PAST_DUE = "past_due"


class Tier(enum.StrEnum):
    FREE = "free"
    PREMIUM = "premium"


@dataclass(frozen=True)
class Entitlements:
    tier: Tier
    plan: Plan | None  # the plan in good standing, if any
    max_active_jobs: int
    priority: int


def plan_by_id(plan_id: str | None) -> Plan | None:
    return next((plan for plan in get_settings().plans if plan.id == plan_id), None)


def grace() -> timedelta:
    return timedelta(days=get_settings().plan_grace_days)


def plan_in_good_standing(account: BillingAccount | None, now: datetime) -> Plan | None:
    if account is None or account.plan_id is None:
        return None
    if account.plan_status in GOOD_STANDING:
        # A renewal that never arrived (its events lost) ends the benefits after the grace too.
        lapsed = account.current_period_end is not None and now > account.current_period_end + grace()
    elif account.plan_status == PAST_DUE:
        lapsed = account.grace_until is None or now >= account.grace_until
    else:
        lapsed = True
    return None if lapsed else plan_by_id(account.plan_id)


def of(session: Session, user_id: str, now: datetime | None = None) -> Entitlements:
    settings = get_settings()
    plan = plan_in_good_standing(repository.account_of(session, user_id), now or utcnow())
    if plan is not None:
        return Entitlements(Tier.PREMIUM, plan, plan.max_active_jobs, plan.priority)
    if credits_repository.bucket_totals(session, user_id).paid > 0:
        return Entitlements(Tier.PREMIUM, None, settings.premium_max_active_jobs, CREDITS_PRIORITY)
    return Entitlements(Tier.FREE, None, settings.free_max_active_jobs, FREE_PRIORITY)
