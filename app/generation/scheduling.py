"""Which queued generations run next, and where a queued one stands.

The order is one rule, used by the worker to pick its next batch and by the API to show a
job's place in line:

    priority (higher first)  ->  fair-share start tag (users take turns)  ->  age

**Priority, in the database, not two broker queues.** Premium work (a plan, or paid credits:
app/billing/entitlements.py) runs before free work. The worker picks jobs from the queued rows
by this order and Celery's messages are only wake-ups ("there is work"): a broker queue cannot
reorder by user, cannot pick the jobs that share a UNet call out of the middle of a line, and
two queues would still need this order inside each and a position that spans both. The rows
are already the truth (the outbox sends a message for each), and the position the page shows
is computed from the same order the worker uses, so it cannot disagree with it.

**Fair shares (start-time fair queuing).** Each job gets a start tag when it is submitted:
the later of "now" in its priority class (the smallest tag among the class's queued and
running jobs) and the finish tag of its owner's last active job (start + pictures x steps).
Ordering by the tag interleaves users in proportion to the work they ask for: a flood of n=8
jobs from one user gets tags 0, 32, 64, ... while another user's single picture, submitted
while the first of them runs, gets tag 0 and runs in the very next batch.

**Batches.** The next batch is the first job in this order plus the later jobs that can share
its UNet call (same model, profile, steps and guidance: the size and sampler follow from those)
while the pictures fit in `max_batch_images`; the rest keep their places.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from app.generation.models import Generation
from app.model_base import JobStatus

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
LOOKAHEAD = 64  # queued jobs read to fill one batch
RECENT_BATCHES = 20  # succeeded jobs whose measured step time estimates the wait


def _work(model: type[Generation] = Generation):
    """A job's share of the worker: picture-steps (what a UNet batch costs, roughly)."""
    return model.n * model.steps


def place(session: Session, job: Generation, priority: int) -> None:
    """Put a new job in line: its priority class and its fair-share start tag.

    Called under its owner's job-count lock (app/credits), so two submissions of one user do
    not read the same last finish tag."""
    class_now = session.scalar(
        select(func.min(Generation.fair_start)).where(Generation.status.in_(ACTIVE), Generation.priority == priority)
    )
    owner_finish = session.scalar(
        select(func.max(Generation.fair_start + _work())).where(
            Generation.user_id == job.user_id, Generation.status.in_(ACTIVE), Generation.priority == priority
        )
    )
    job.priority = priority
    job.fair_start = max(float(class_now or 0.0), float(owner_finish or 0.0))


def _order():
    return (Generation.priority.desc(), Generation.fair_start, Generation.created_at, Generation.id)


@dataclass(frozen=True)
class Queued:
    id: str
    n: int
    batch_key: tuple  # what jobs must share to run in one UNet call


def next_batch(session: Session, max_images: int) -> tuple[list[str], int]:
    """(ids of the next batch in order, their pictures); ([], 0) when nothing is queued.

    A job with more pictures than `max_images` runs alone (its pictures are never split)."""
    rows = session.execute(
        select(Generation.id, Generation.n, Generation.model_id, Generation.profile, Generation.steps,
               Generation.guidance_scale)
        .where(Generation.status == JobStatus.QUEUED).order_by(*_order()).limit(LOOKAHEAD)
    ).all()
    queued = [Queued(row.id, row.n, (row.model_id, row.profile, row.steps, row.guidance_scale)) for row in rows]
    if not queued:
        return [], 0
    head, chosen = queued[0], [queued[0].id]
    images = head.n
    for job in queued[1:]:
        if images >= max_images:
            break
        if job.batch_key == head.batch_key and images + job.n <= max_images:
            chosen.append(job.id)
            images += job.n
    return chosen, images


@dataclass(frozen=True)
class Place:
    position: int  # 1: next to run
    estimated_wait_s: float | None  # until it starts; None before any batch was measured


def place_in_line(session: Session, job: Generation) -> Place:
    """Where a queued job stands: the queued jobs ahead of it in the worker's order, and the
    work ahead of it (those, plus what running jobs have left) at the measured pace."""
    mine = tuple_(-job.priority, job.fair_start, job.created_at, job.id)
    ahead = session.execute(
        select(func.count(), func.coalesce(func.sum(_work()), 0)).where(
            Generation.status == JobStatus.QUEUED,
            tuple_(-Generation.priority, Generation.fair_start, Generation.created_at, Generation.id) < mine,
        )
    ).one()
    running_left = session.scalar(
        select(func.coalesce(func.sum(_work() * (1.0 - Generation.progress)), 0.0))
        .where(Generation.status == JobStatus.RUNNING)
    )
    pace = measured_image_step_s(session)
    wait = None if pace is None else round(pace * (float(ahead[1]) + float(running_left or 0.0)), 1)
    return Place(position=int(ahead[0]) + 1, estimated_wait_s=wait)


def measured_image_step_s(session: Session) -> float | None:
    """Mean seconds per picture-step of the last batches the workers ran (as measured by them)."""
    recent = (
        select(Generation.image_step_s)
        .where(Generation.status == JobStatus.SUCCEEDED, Generation.image_step_s.is_not(None))
        .order_by(Generation.created_at.desc()).limit(RECENT_BATCHES).subquery()
    )
    value = session.scalar(select(func.avg(recent.c.image_step_s)))
    return float(value) if value is not None else None
