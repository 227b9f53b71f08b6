"""Checking subject photos by their content, before anything is stored.

Every file is read in bounded chunks (a file over the limit stops being read one chunk past
it), decoded fully by Pillow (a truncated file fails here, not in the worker hours later),
turned upright by its EXIF orientation and measured. Decompression bombs are refused from
the header alone, before a single pixel is decoded. Decoding a large photo takes seconds
and hundreds of MB: it runs in a worker thread, at most `max_concurrent_photo_decodes` at
once per process (`check_off_loop`), so the event loop keeps answering meanwhile.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import anyio
from fastapi import UploadFile
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from app.concurrency import bounded
from app.config import get_settings

MIN_PHOTOS, MAX_PHOTOS = 3, 5
MIN_SIDE_PX = 64
# 8192 x 8192: a 48-megapixel phone photo passes; a 10000 x 10000 bomb does not. Pillow
# raises DecompressionBombError beyond twice this and only warns between once and twice,
# so the size is also checked here, from the header, before decoding.
MAX_PHOTO_PIXELS = 8192 * 8192
READ_CHUNK_BYTES = 1024 * 1024
# An upload waiting longer than this for a decoding turn is answered 503 (load shed).
DECODE_WAIT_S = 60.0
EXIF_ORIENTATION = 0x0112

Image.MAX_IMAGE_PIXELS = MAX_PHOTO_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False  # the default; a truncated photo must fail to load


@dataclass(frozen=True)
class CheckedPhoto:
    filename: str
    sha256: str  # of the uploaded bytes: exact duplicates are refused
    png: bytes  # upright, RGB, without the original's metadata (EXIF GPS and the like)
    width: int
    height: int


@dataclass(frozen=True)
class Rejection:
    file: str
    reason: str


async def read_bounded(upload: UploadFile, limit: int) -> bytes | None:
    """The file's bytes, or None as soon as it proves to be larger than `limit`."""
    if upload.size is not None and upload.size > limit:
        return None
    chunks, total = [], 0
    while chunk := await upload.read(READ_CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def check_off_loop(filename: str, data: bytes) -> CheckedPhoto | Rejection:
    """`check_photo` in a worker thread, a bounded number at once per process."""
    async with bounded("photo-decodes", get_settings().max_concurrent_photo_decodes, DECODE_WAIT_S):
        return await anyio.to_thread.run_sync(check_photo, filename, data)


def check_photo(filename: str, data: bytes) -> CheckedPhoto | Rejection:
    """Decode one photo completely; a Rejection says in words what is wrong with it."""
    if not data:
        return Rejection(filename, "the file is empty")
    try:
        # No `with`: closing would free the pixels that `upright` may share (the file is
        # a BytesIO, nothing to release).
        opened = Image.open(io.BytesIO(data))
        width, height = opened.size
        if width * height > MAX_PHOTO_PIXELS:
            return Rejection(filename, _too_many_pixels(width, height))
        opened.load()  # decodes every byte: truncated or corrupt data fails here
        upright = _upright_rgb(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning, when made an error
        return Rejection(filename, _too_many_pixels(None, None))
    except UnidentifiedImageError:
        return Rejection(filename, "not an image (JPEG, PNG, WebP and the like are accepted)")
    except Exception as broken:  # noqa: BLE001 - a decoder's failure of any kind means a broken file
        return Rejection(filename, f"the image is truncated or corrupt ({_short(broken)})")
    if min(upright.size) < MIN_SIDE_PX:
        return Rejection(
            filename, f"too small: {upright.width}x{upright.height} px; the short side needs at least {MIN_SIDE_PX} px"
        )
    encoded = io.BytesIO()
    upright.save(encoded, format="PNG", compress_level=1)
    return CheckedPhoto(filename, hashlib.sha256(data).hexdigest(), encoded.getvalue(), upright.width, upright.height)


def _upright_rgb(image: Image.Image) -> Image.Image:
    # Copies only when needed: each full-size copy of a 48-megapixel photo is ~150 MB.
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def too_large(filename: str, limit: int) -> Rejection:
    return Rejection(filename, f"too large: the limit is {limit // (1024 * 1024)} MB per photo")


def duplicates(photos: list[CheckedPhoto]) -> list[Rejection]:
    """Every photo whose bytes equal an earlier one's."""
    seen: dict[str, str] = {}
    rejections = []
    for photo in photos:
        if photo.sha256 in seen:
            rejections.append(Rejection(photo.filename, f"the same photo as {seen[photo.sha256]}"))
        else:
            seen[photo.sha256] = photo.filename
    return rejections


def _too_many_pixels(width: int | None, height: int | None) -> str:
    size = f"{width}x{height} px, " if width else ""
    return f"too many pixels ({size}more than {MAX_PHOTO_PIXELS // 1_000_000} megapixels): refused as a possible decompression bomb"


def _short(error: Exception) -> str:
    return (str(error) or error.__class__.__name__)[:120]
