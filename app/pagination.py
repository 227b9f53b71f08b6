"""Opaque page cursors: (created_at, id) of the last row shown, base64url-encoded.

One decoder for every list, refusing as a 422 naming `cursor` anything this server could
not have issued - a NUL in the id, a date that overflows once moved to UTC - before it
reaches a query.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from app.errors import AppError
from app.validation import is_id


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None or not is_id(row_id):
            raise ValueError(cursor)
        return created_at.astimezone(UTC), row_id
    except (ValueError, OverflowError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise AppError("validation_error", "cursor: is not a cursor this server returned", 422,
                       fields=[{"field": "cursor", "message": "is invalid"}]) from None
