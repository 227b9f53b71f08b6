"""Photos for upload tests, made in memory: good ones, and each kind of bad one."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw

COLORS = [(220, 40, 40), (40, 170, 70), (40, 80, 220), (240, 210, 40), (140, 60, 190), (245, 140, 30)]


def photo(index: int = 0, size: tuple[int, int] = (96, 96), fmt: str = "PNG", exif_orientation: int | None = None) -> bytes:
    """A flat background with a circle; `index` changes the colours so photos differ."""
    image = Image.new("RGB", size, COLORS[index % len(COLORS)])
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.3, h * 0.3, w * 0.7, h * 0.7), fill=COLORS[(index + 3) % len(COLORS)])
    draw.rectangle((0, 0, w // 8, h // 8), fill=(20, 20, 20))  # a mark in the top-left corner
    out = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, format=fmt, exif=exif.tobytes())
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def good_photos(count: int = 3) -> list[tuple[str, bytes]]:
    return [(f"photo{i}.png", photo(i)) for i in range(count)]


def truncated_jpeg() -> bytes:
    data = photo(1, size=(256, 256), fmt="JPEG")
    return data[: len(data) // 2]


def png_bomb(width: int = 10000, height: int = 10000) -> bytes:
    """A valid 1-bit greyscale PNG of width x height pixels that compresses to a few KB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row * 500) for _ in range(height // 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def oversized(limit_bytes: int) -> bytes:
    """A real PNG with a long ignored text chunk, larger than the limit."""
    return photo(2) + b"\x00" * (limit_bytes + 1)


def files(named: list[tuple[str, bytes]], content_type: str = "image/png") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (name, data, content_type)) for name, data in named]
