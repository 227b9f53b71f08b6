"""Which models a user may generate with, and where their weights are.

The base model is the folder in `settings.model_path`. It is registered as a `trained_models`
row of kind 'base' the first time anyone asks (idempotently: its id is derived from its
path, so concurrent first requests insert the same row once). Personal models are the rows
the personalization domain inserts, visible only to their owner.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import storage
from app.auth.models import User
from app.catalog import repository
from app.catalog.model_card import ModelDefaults, model_defaults, model_vocabulary
from app.catalog.vocabulary import Hint, Vocabulary, class_hints, prompt_hints
from app.config import get_settings
from app.credits import pricing
from app.errors import AppError
from app.personalization.models import ModelKind, TrainedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """What a worker needs to load a model: the base folder and an optional personal one."""

    id: str
    name: str
    base_path: Path
    personal_path: Path | None = None
    default_steps: int = ModelDefaults.steps  # the base model card's (the engine reads it too)
    default_guidance: float = ModelDefaults.guidance_scale
    vocabulary: Vocabulary | None = None  # None: the card lists no words (knows any)
    personal_words: tuple[str, ...] = ()  # a personal model's token and class noun


class ModelNotFound(AppError):
    def __init__(self, model_id: str) -> None:
        # Unknown and someone else's answer the same (never 403 for another user's object).
        super().__init__("model_not_found", f"model: no model with id {model_id!r}.", 404, field="model")


def base_model_id(path: Path) -> str:
    return hashlib.md5(f"base:{path}".encode()).hexdigest()  # 32 hex chars: an id column


def _with_defaults(model: ResolvedModel) -> ResolvedModel:
    # A job records the steps and guidance it runs with, so history shows (and a seed
    # reproduces) the real values even if the model card changes later.
    card = model_defaults(model.base_path)
    vocabulary = model_vocabulary(model.base_path)
    return replace(model, default_steps=card.steps, default_guidance=card.guidance_scale,
                   vocabulary=vocabulary.with_words(model.personal_words) if vocabulary else None)


def ensure_base_model(session: Session) -> TrainedModel:
    """The configured base model's row, inserted on first use."""
    path = get_settings().model_path
    model_id = base_model_id(path)
    existing = repository.get(session, model_id)
    if existing is not None:
        return existing
    row = TrainedModel(id=model_id, user_id=None, name=model_defaults(path).name, kind=ModelKind.BASE, path=str(path))
    try:
        with session.begin_nested():  # a concurrent first request may insert it too
            session.add(row)
    except IntegrityError:
        winner = repository.get(session, model_id)
        assert winner is not None
        return winner
    return row


def _absolute(path: str) -> Path:
    # Personal models live under storage (relative paths); base models anywhere (absolute).
    return Path(path) if Path(path).is_absolute() else storage.resolve(path)


def resolve_model(session: Session, user: User | str, model_id: str | None) -> ResolvedModel:
    """The model to generate with: the base when `model_id` is None; 404 unless visible."""
    return _with_defaults(_resolve(session, user, model_id))


def _resolve(session: Session, user: User | str, model_id: str | None) -> ResolvedModel:
    user_id = user if isinstance(user, str) else user.id
    base = ensure_base_model(session)
    if model_id is None or model_id == base.id:
        return ResolvedModel(id=base.id, name=base.name, base_path=Path(base.path))
    row = repository.visible_to(session, user_id, model_id)
    if row is None:
        raise ModelNotFound(model_id)
    if row.kind == ModelKind.BASE:
        return ResolvedModel(id=row.id, name=row.name, base_path=_absolute(row.path))
    parent = repository.get(session, row.base_model_id) if row.base_model_id else None
    base_path = _absolute(parent.path) if parent is not None else Path(base.path)
    words = tuple(word for word in (row.token, row.class_noun) if word)
    return ResolvedModel(id=row.id, name=row.name, base_path=base_path, personal_path=_absolute(row.path),
                         personal_words=words)


def list_models(session: Session, user: User) -> list[TrainedModel]:
    """The base model first, then the caller's own models, newest first."""
    return [ensure_base_model(session), *repository.personal_models_of(session, user.id)]


@dataclass(frozen=True)
class ListedModel:
    row: TrainedModel
    prices: dict[str, int]  # credits per picture for each profile
    vocabulary: Vocabulary | None


def models_with_prices(session: Session, user: User) -> list[ListedModel]:
    """`list_models`, each with its credits per picture and vocabulary (what the Create page shows)."""
    listed = []
    for row in list_models(session, user):
        model = resolve_model(session, user, row.id)
        listed.append(ListedModel(row, pricing.profile_prices(model.base_path, model.default_steps), model.vocabulary))
    return listed


def vocabulary_hints(session: Session, user: User, model_id: str | None, prompts: list[str], as_list: bool,
                     class_noun: str | None = None) -> list[Hint]:
    """Warnings for words `model_id` (default: the base model) does not know; 404 unless visible."""
    model = resolve_model(session, user, model_id)
    hints = prompt_hints(model.vocabulary, model.name, prompts, as_list)
    if class_noun is not None:
        hints += class_hints(model.vocabulary, model.name, class_noun)
    return hints


def delete_model(session: Session, user: User, model_id: str) -> Path | None:
    """Delete one of the caller's own models; returns its folder when it lies in storage
    (for the caller to remove once the deletion is committed)."""
    row = repository.visible_to(session, user.id, model_id)
    if row is None:
        raise ModelNotFound(model_id)
    if row.kind == ModelKind.BASE:
        raise AppError("model_protected", "The base model cannot be deleted.", 403, field="model")
    folder = None if Path(row.path).is_absolute() else storage.resolve(row.path)
    session.delete(row)
    session.flush()
    return folder
