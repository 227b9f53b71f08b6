"""What a personalization test checks after a request: stored files and table row counts.

A plain module (not conftest.py): test modules import it by a name no other folder uses.
"""
from __future__ import annotations

from pathlib import Path


def stored_uploads() -> list[Path]:
    from app.config import get_settings

    root = get_settings().storage_dir / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def row_counts(db) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.models import CreditLedgerEntry, Finetune, Subject, SubjectPhoto, TrainedModel

    db.expire_all()
    counts = {
        model.__tablename__: db.scalar(select(func.count()).select_from(model))
        for model in (Subject, SubjectPhoto, Finetune, TrainedModel)
    }
    # charges for fine-tunes (other ledger entries, such as a daily allowance, are not ours)
    counts["finetune_charges"] = db.scalar(
        select(func.count()).select_from(CreditLedgerEntry).where(CreditLedgerEntry.reference.like("finetune:%"))
    )
    return counts
