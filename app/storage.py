"""Files under the data dir's storage folder: images, uploads, models.

Rows store paths relative to the storage root, so the data dir can move (or be mounted
elsewhere on a worker machine) without rewriting the database.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from app.config import get_settings


class UnsafePath(ValueError):
    pass


def storage_root() -> Path:
    return get_settings().storage_dir


def resolve(relative: str) -> Path:
    """The absolute path of a stored file; refuses anything that escapes the root."""
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts or not parts.parts:
        raise UnsafePath(f"not a storage-relative path: {relative!r}")
    return storage_root().joinpath(*parts.parts)


def write_bytes(relative: str, data: bytes) -> Path:
    """Write atomically (temp file + rename): readers never see half a file, and a
    re-delivered task simply replaces what it wrote before."""
    target = resolve(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
