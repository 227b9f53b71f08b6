"""Rules for subjects and fine-tunes, as the web process applies them.

Services add and flush; the request commits. A fine-tune's life after it is queued is the job
layer's (app/jobs); what the worker does for a fine-tune beyond that is `app.personalization.runs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import UploadFile
from sqlalchemy.orm import Session

from app import storage
from app.auth.models import User
from app.catalog.model_card import model_defaults, model_vocabulary
from app.catalog.vocabulary import Hint, class_hints
from app.config import get_settings
from app.credits import pricing
from app.errors import AppError, NotFound
from app.jobs import lifecycle
from app.jobs.kinds import FINETUNE
from app.model_base import JobStatus, new_id
from app.personalization import repository, uploads
from app.personalization.models import Finetune, FinetunePhase, Subject, SubjectPhoto
from app.personalization.schemas import (
    CLASS_NOUN_MAX_CHARS,
    CLASS_NOUN_PATTERN,
    SUBJECT_NAME_MAX_CHARS,
    FinetuneRequest,
    SubjectOut,
)
from app.personalization.tokens import pick_token
from app.validation import printable


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


# --- subjects ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedSubject:
    name: str
    class_noun: str
    photos: list[uploads.CheckedPhoto]


async def check_subject(name: str | None, class_noun: str | None, images: list[UploadFile]) -> CheckedSubject:
    """Every field and every photo checked (422 naming each problem), before anything is
    stored. Async: the photos are decoded in worker threads, a bounded number at once."""
    # 1. fields and count
    problems = _field_problems(name, class_noun)
    if not uploads.MIN_PHOTOS <= len(images) <= uploads.MAX_PHOTOS:
        problems.append(Problem("images", f"send {uploads.MIN_PHOTOS} to {uploads.MAX_PHOTOS} photos (got {len(images)})"))
    # 2. every photo by its content
    checked, rejected = await _check_photos(images)
    rejected += uploads.duplicates(checked)
    if problems or rejected:
        raise _subject_rejected(problems, rejected)
    return CheckedSubject(_clean_name(name), _clean_noun(class_noun), checked)


def store_subject(session: Session, user: User, checked: CheckedSubject) -> Subject:
    """Rows in this transaction, files in the user's private folder."""
    subject = Subject(
        id=new_id(), user_id=user.id, name=checked.name, class_noun=checked.class_noun,
        token=pick_token(get_settings().model_path, repository.tokens_of(session, user.id)),
    )
    session.add(subject)
    written = []
    try:
        for photo in checked.photos:
            relative = f"uploads/{user.id}/subjects/{subject.id}/{new_id()}.png"
            written.append(storage.write_bytes(relative, photo.png))
            session.add(SubjectPhoto(subject_id=subject.id, path=relative, sha256=photo.sha256,
                                     width=photo.width, height=photo.height))
        session.flush()
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return subject


async def _check_photos(images: list[UploadFile]) -> tuple[list[uploads.CheckedPhoto], list[uploads.Rejection]]:
    limit = get_settings().max_upload_bytes
    checked: list[uploads.CheckedPhoto] = []
    rejected: list[uploads.Rejection] = []
    for index, upload in enumerate(images[: uploads.MAX_PHOTOS + 1]):  # a wrong count is reported anyway
        filename = _display_name(upload.filename, index)
        data = await uploads.read_bounded(upload, limit)
        result = uploads.too_large(filename, limit) if data is None else await uploads.check_off_loop(filename, data)
        if isinstance(result, uploads.CheckedPhoto):
            checked.append(result)
        else:
            rejected.append(result)
    return checked, rejected


def _field_problems(name: str | None, class_noun: str | None) -> list[Problem]:
    problems = []
    cleaned_name = _clean_name(name)
    if not cleaned_name:
        problems.append(Problem("name", "is required"))
    elif len(cleaned_name) > SUBJECT_NAME_MAX_CHARS:
        problems.append(Problem("name", f"must be at most {SUBJECT_NAME_MAX_CHARS} characters"))
    noun = _clean_noun(class_noun)
    if not noun:
        problems.append(Problem("class_noun", "is required (what the subject is: dog, circle, teddy bear)"))
    elif len(noun) > CLASS_NOUN_MAX_CHARS or not CLASS_NOUN_PATTERN.match(noun):
        problems.append(Problem(
            "class_noun", f"must be 1-{CLASS_NOUN_MAX_CHARS} characters of letters, spaces and hyphens",
        ))
    return problems


def _subject_rejected(problems: list[Problem], rejected: list[uploads.Rejection]) -> AppError:
    parts = [f"{p.field}: {p.message}" for p in problems] + [f"{r.file}: {r.reason}" for r in rejected]
    return AppError(
        "validation_error", "; ".join(parts), 422,
        fields=[{"field": p.field, "message": p.message} for p in problems],
        files=[{"file": r.file, "reason": r.reason} for r in rejected],
    )


def _clean_name(name: str | None) -> str:
    return " ".join((name or "").split())


def _clean_noun(noun: str | None) -> str:
    # Prompts are matched in any letter case; one spelling keeps tokens and class banks shared.
    return " ".join((noun or "").split()).lower()


def _display_name(filename: str | None, index: int) -> str:
    base = printable(filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:200] or f"file {index + 1}"


def class_noun_hints(subject: Subject) -> list[Hint]:
    """Warnings when the base model (the one fine-tunes start from) has no such class."""
    base = get_settings().model_path
    return class_hints(model_vocabulary(base), model_defaults(base).name, subject.class_noun)


def subject_view(session: Session, subject: Subject) -> SubjectOut:
    return subject_views(session, [subject])[0]


def subject_views(session: Session, subjects: list[Subject]) -> list[SubjectOut]:
    counts = repository.photo_counts(session, [s.id for s in subjects])
    return [
        SubjectOut(id=s.id, name=s.name, class_noun=s.class_noun, token=s.token,
                   photo_count=counts.get(s.id, 0), created_at=s.created_at)
        for s in subjects
    ]


def own_subject(session: Session, user: User, subject_id: str) -> Subject:
    subject = repository.subject_of(session, user.id, subject_id)
    if subject is None:
        raise NotFound("subject")
    return subject


# --- fine-tunes -------------------------------------------------------------------------
def start_finetune(session: Session, user: User, subject_id: str, request: FinetuneRequest) -> Finetune:
    """A queued, charged job; its task is sent once this transaction has committed (429, 402
    or 503 roll it back: see app.jobs.lifecycle.submit)."""
    subject = own_subject(session, user, subject_id)
    overrides = request.overrides()
    finetune = Finetune(
        id=new_id(), user_id=user.id, subject_id=subject.id, status=JobStatus.QUEUED,
        phase=FinetunePhase.QUEUED, progress=0.0, step=0, total_steps=overrides.get("steps", 0),
        config=overrides,
    )
    finetune.cost = pricing.finetune_cost(request.steps)
    lifecycle.submit(session, FINETUNE, user, finetune)
    return finetune


def own_finetune(session: Session, user: User, finetune_id: str) -> Finetune:
    finetune = repository.finetune_of(session, user.id, finetune_id)
    if finetune is None:
        raise NotFound("fine-tune")
    return finetune


def cancel_finetune(session: Session, user: User, finetune_id: str) -> Finetune:
    """The job ends canceled at once (its credits come back after the commit); a worker that
    holds it stops within about a second. A job that had ended stays as it was."""
    finetune = own_finetune(session, user, finetune_id)
    lifecycle.cancel(session, FINETUNE, finetune.id)
    return repository.finetune_by_id(session, finetune.id) or finetune
