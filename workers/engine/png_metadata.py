"""PNG `parameters` text chunk in AUTOMATIC1111's format, written and read back.

A1111's web UI (modules/processing.py `create_infotext`, parsed by
`infotext_utils.parse_generation_parameters`) writes, and most SD tools read:

    a red circle on a blue background
    Negative prompt: blurry
    Steps: 8, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 123, Size: 64x64, Model: shapes-v1

The prompt (possibly several lines), an optional "Negative prompt:" line (omitted when
empty), then one line of comma-separated "Key: value" pairs. A value containing a comma,
colon or newline is written as a JSON string, as A1111's `quote` does. Parsing follows
A1111's heuristic: the last line holds the parameters only if it has at least 3 pairs.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

PARAMETERS_KEY = "parameters"

# A1111's re_param_code: a key, a colon, then a JSON-quoted string or anything up to a comma.
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_NEGATIVE = "Negative prompt:"


@dataclass
class ImageParameters:
    """Everything needed to reproduce one image, as other SD tools name it."""

    prompt: str
    steps: int
    sampler: str
    cfg_scale: float
    seed: int
    width: int
    height: int
    negative_prompt: str = ""
    model: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # other keys, kept in order


def _quote(value) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def format_parameters(params: ImageParameters) -> str:
    """The `parameters` text for one image."""
    pairs = {
        "Steps": params.steps,
        "Sampler": params.sampler,
        "CFG scale": float(params.cfg_scale),
        "Seed": params.seed,
        "Size": f"{params.width}x{params.height}",
    }
    if params.model:
        pairs["Model"] = params.model
    pairs.update(params.extra)
    lines = [params.prompt]
    if params.negative_prompt:
        lines.append(f"{_NEGATIVE} {params.negative_prompt}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in pairs.items()))
    return "\n".join(lines)


def _split_text(text: str) -> tuple[str, str, str]:
    """(prompt, negative prompt, parameter line) by A1111's rules."""
    lines = text.strip().split("\n")
    last = lines[-1] if len(_PAIR.findall(lines[-1])) >= 3 else ""
    if last:
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if line.startswith(_NEGATIVE) and not negative:
            negative.append(line[len(_NEGATIVE):].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    return "\n".join(prompt), "\n".join(negative), last


def parse_parameters(text: str) -> ImageParameters:
    """Read a `parameters` text (ours or A1111's) back into ImageParameters."""
    prompt, negative, last = _split_text(text)
    pairs = {key.strip(): _unquote(value.strip()) for key, value in _PAIR.findall(last)}
    width, _, height = pairs.pop("Size", "0x0").partition("x")
    return ImageParameters(
        prompt=prompt,
        negative_prompt=negative,
        steps=int(pairs.pop("Steps", 0)),
        sampler=pairs.pop("Sampler", ""),
        cfg_scale=float(pairs.pop("CFG scale", 0.0)),
        seed=int(pairs.pop("Seed", 0)),
        width=int(width or 0),
        height=int(height or 0),
        model=pairs.pop("Model", None),
        extra=pairs,
    )


def png_bytes(image, params: ImageParameters) -> bytes:
    """Encode `image` as PNG with the `parameters` chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    # PIL writes tEXt when the text is Latin-1 and iTXt (UTF-8) otherwise, as A1111 does.
    info.add_text(PARAMETERS_KEY, format_parameters(params))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(image, path: Path | str, params: ImageParameters) -> Path:
    path = Path(path)
    path.write_bytes(png_bytes(image, params))
    return path


def read_parameters(source) -> ImageParameters | None:
    """The parameters stored in a PNG (path, file object or bytes), or None if it has none."""
    from PIL import Image

    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    with Image.open(source) as image:
        text = image.info.get(PARAMETERS_KEY)
    return parse_parameters(text) if text else None


def parameters_for(result, index: int) -> ImageParameters:
    """ImageParameters for image `index` of a sampling.GenerationResult."""
    return ImageParameters(
        prompt=result.prompts[index],
        negative_prompt=result.negative_prompt,
        steps=result.steps,
        sampler=result.sampler,
        cfg_scale=result.guidance_scale,
        seed=result.seeds[index],
        width=result.width,
        height=result.height,
        model=result.model_name,
        # which compiled or PyTorch path drew it: the fast profile picks one per machine
        extra={"Backend": result.backend} if result.backend else {},
    )
