"""A personal model to take away: `GET /api/v1/models/{id}/download?format=diffusers|kohya`.

- a LoRA model: `diffusers` is its peft/diffusers file as trained (what the engine serves),
  `kohya` the same weights in the kohya/A1111 layout that the fine-tune wrote beside it
  (workers/dreambooth/kohya.py; AUTOMATIC1111, ComfyUI and Forge load it);
- a full fine-tune: `diffusers` is a zip of a complete diffusers folder - the base model's
  files with the model's own fine-tuned parts in place of the base's - made while it is sent,
  so a multi-GB model needs no temporary copy; `kohya` is a LoRA format, so it is refused.
Only the owner's personal models: anyone else's, and base models, answer 404.
"""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from app.auth.models import User
from app.catalog import repository
from app.catalog.model_card import CARD_NAME, KOHYA_FILE, LORA_FILE
from app.catalog.service import ModelNotFound, resolve_model
from app.errors import AppError
from app.personalization.models import ModelKind

OWNED_PARTS = ("unet", "text_encoder")
DownloadFormat = Literal["diffusers", "kohya"]
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Download:
    file_name: str
    media_type: str
    path: Path | None = None  # one file, sent as it is
    entries: tuple[tuple[str, Path], ...] = ()  # or an archive of these (name in the zip, file)

    def chunks(self) -> Iterator[bytes]:
        return zip_stream(self.entries)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "model"


def model_download(session: Session, user: User, model_id: str, fmt: DownloadFormat) -> Download:
    row = repository.get(session, model_id)
    if row is None or row.kind != ModelKind.PERSONAL or row.user_id != user.id:
        raise ModelNotFound(model_id)
    model = resolve_model(session, user, model_id)
    folder = model.personal_path
    assert folder is not None  # a personal model has its folder
    stem = _file_stem(row.name)
    if (folder / LORA_FILE).exists():
        path = folder / (KOHYA_FILE if fmt == "kohya" else LORA_FILE)
        if not path.exists():
            raise AppError("format_unavailable", "This model has no kohya file (an SDXL LoRA, or one trained "
                           "before kohya files were written): download format=diffusers.", 409, field="format")
        return Download(f"{stem}-{fmt}.safetensors", "application/octet-stream", path=path)
    if not any((folder / part / "config.json").exists() for part in OWNED_PARTS):
        raise AppError("model_missing", "This model's files are missing.", 410)
    if fmt == "kohya":
        raise AppError("format_unavailable", "kohya is a LoRA format and this model is a full fine-tune: "
                       "download format=diffusers.", 409, field="format")
    return Download(f"{stem}-diffusers.zip", "application/zip", entries=tuple(_folder_entries(stem, model.base_path,
                                                                                              folder)))


def _folder_entries(top: str, base: Path, personal: Path) -> Iterator[tuple[str, Path]]:
    """The base folder's files, its parts replaced by the model's own, and the model's card."""
    owned = {part for part in OWNED_PARTS if (personal / part / "config.json").exists()}
    for path in sorted(base.rglob("*")):
        relative = path.relative_to(base)
        if path.is_file() and relative.parts[0] not in owned:
            yield f"{top}/{relative.as_posix()}", path
    for part in sorted(owned):
        for path in sorted((personal / part).rglob("*")):
            if path.is_file():
                yield f"{top}/{path.relative_to(personal).as_posix()}", path
    if (personal / CARD_NAME).exists():
        yield f"{top}/personal_model.json", personal / CARD_NAME


class _Sink(io.RawIOBase):
    """Collects what zipfile writes, for the stream to send (zipfile handles a sink that
    cannot seek by writing each entry's sizes after its data)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def zip_stream(entries: tuple[tuple[str, Path], ...]) -> Iterator[bytes]:
    """A stored (not deflated: weights do not compress) zip of `entries`, a chunk at a time."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in entries:
            with path.open("rb") as source, archive.open(name, "w", force_zip64=True) as target:
                while block := source.read(CHUNK_BYTES):
                    target.write(block)
                    yield sink.take()
    yield sink.take()
