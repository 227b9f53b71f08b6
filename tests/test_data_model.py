"""The data model's guarantees: idempotent ledger entries, owner cascades, UTC timestamps."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.models import (
    CreditBucket,
    CreditLedgerEntry,
    Finetune,
    Generation,
    Image,
    JobStatus,
    LedgerReason,
    ModelKind,
    StripeEvent,
    Subject,
    SubjectPhoto,
    TrainedModel,
    User,
)


@pytest.fixture
def user(db) -> User:
    user = User(email="owner@example.com", password_hash="x")
    db.add(user)
    db.commit()
    return user


def _entry(user: User, reference: str | None, bucket: CreditBucket = CreditBucket.PAID) -> CreditLedgerEntry:
    return CreditLedgerEntry(user_id=user.id, amount=10, bucket=bucket, reason=LedgerReason.PURCHASE, reference=reference)


def test_ledger_entry_with_same_reason_and_reference_is_rejected(db, user) -> None:
    db.add(_entry(user, "stripe:evt_1"))
    db.commit()
    db.add(_entry(user, "stripe:evt_1"))
    with pytest.raises(IntegrityError):
        db.commit()


def test_ledger_allows_both_buckets_for_one_reference_and_unreferenced_repeats(db, user) -> None:
    db.add_all([_entry(user, "generation:1", CreditBucket.FREE), _entry(user, "generation:1", CreditBucket.PAID)])
    db.add_all([_entry(user, None), _entry(user, None)])
    db.commit()
    assert db.scalar(select(func.count()).select_from(CreditLedgerEntry)) == 4


def test_stripe_event_ids_are_unique(db) -> None:
    db.add_all([StripeEvent(event_id="evt_1", type="checkout.session.completed"),
                StripeEvent(event_id="evt_1", type="checkout.session.completed")])
    with pytest.raises(IntegrityError):
        db.commit()


def test_idempotency_key_is_unique_per_user(db, user) -> None:
    def job() -> Generation:
        return Generation(user_id=user.id, prompt="a red circle", steps=4, guidance_scale=3.0,
                          model_id="base", idempotency_key="k1")

    db.add(job())
    db.commit()
    db.add(job())
    with pytest.raises(IntegrityError):
        db.commit()


def test_deleting_a_user_deletes_everything_they_own(db, user) -> None:
    generation = Generation(user_id=user.id, prompt="p", steps=4, guidance_scale=3.0, model_id="base")
    subject = Subject(user_id=user.id, name="my cat", class_noun="circle", token="sks")
    db.add_all([generation, subject, _entry(user, "admin:1")])
    db.flush()
    model = TrainedModel(user_id=user.id, name="mine", kind=ModelKind.PERSONAL, path="models/x")
    db.add_all([
        Image(generation_id=generation.id, user_id=user.id, index=0, seed=1, path="i.png", width=64, height=64),
        SubjectPhoto(subject_id=subject.id, path="p.png", sha256="0" * 64, width=64, height=64),
        model,
    ])
    db.flush()
    db.add(Finetune(user_id=user.id, subject_id=subject.id, trained_model_id=model.id, config={"steps": 400}))
    db.commit()
    db.delete(user)
    db.commit()
    for table in (Generation, Image, Subject, SubjectPhoto, Finetune, TrainedModel, CreditLedgerEntry):
        assert db.scalar(select(func.count()).select_from(table)) == 0, table.__name__


def test_job_defaults_and_utc_timestamps(db, user) -> None:
    generation = Generation(user_id=user.id, prompt="p", steps=4, guidance_scale=3.0, model_id="base")
    db.add(generation)
    db.commit()
    db.expire_all()
    loaded = db.get(Generation, generation.id)
    assert loaded.status is JobStatus.QUEUED and loaded.progress == 0.0 and loaded.n == 1 and loaded.cost == 0
    assert loaded.created_at.utcoffset().total_seconds() == 0
    assert len(loaded.id) == 32


def test_base_models_have_no_owner_and_json_metrics_round_trip(db) -> None:
    base = TrainedModel(user_id=None, name="shapes-v1", kind=ModelKind.BASE, path="models/shapes-v1",
                        metrics={"prompt_fidelity": 0.91})
    db.add(base)
    db.commit()
    db.expire_all()
    assert db.get(TrainedModel, base.id).metrics == {"prompt_fidelity": 0.91}
