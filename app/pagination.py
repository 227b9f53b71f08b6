"""Opaque page cursors: (created_at, key) of the last row shown, base64url-encoded; the key
is a row's id or a ledger reference (`generation:<id>`).

One decoder for every list, refusing as a 422 naming `cursor` anything this server could
not have issued - a NUL in the key, a date that overflows once moved to UTC - before it
reaches a query.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from app.errors import AppError
from app.validation import text_problem

MAX_KEY_CHARS = 100


def encode_cursor(created_at: datetime, key: str) -> str:
    raw = f"{created_at.isoformat()}|{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, key = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None or not 0 < len(key) <= MAX_KEY_CHARS or text_problem(key):
            raise ValueError(cursor)
        return created_at.astimezone(UTC), key
    except (ValueError, OverflowError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise AppError("validation_error", "cursor: is not a cursor this server returned", 422,
                       fields=[{"field": "cursor", "message": "is invalid"}]) from None
