"""What conditions the UNet in DreamBooth, per model family.

- SD 1.x / 2.x: one tokenizer and text encoder, its last hidden state.
- SDXL, as diffusers' train_dreambooth_lora_sdxl does: both tokenizers and text encoders,
  their penultimate hidden states side by side (768 + 1280 wide), the second encoder's pooled
  projection, and `add_time_ids` (original size, crop corner, target size) at the training
  resolution, through `added_cond_kwargs`.

A prompt's token ids travel as one tensor of (rows, encoders, tokens), so the data loader,
the checkpoint scores and the module handle both families alike.
"""
from __future__ import annotations

import torch


def token_ids(tokenizers, prompts: list[str]) -> torch.Tensor:
    """(rows, len(tokenizers), tokens): every tokenizer pads to the first one's length."""
    length = tokenizers[0].model_max_length
    return torch.stack([tokenizer(prompts, padding="max_length", max_length=length, truncation=True,
                                  return_tensors="pt").input_ids for tokenizer in tokenizers], dim=1)


def encode(text_encoders, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(hidden states, pooled embedding or None) for token ids of token_ids()'s shape."""
    if len(text_encoders) == 1:
        return text_encoders[0](ids[:, 0])[0].float(), None
    first, second = (encoder(ids[:, k], output_hidden_states=True) for k, encoder in enumerate(text_encoders))
    hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    return hidden.float(), second.text_embeds.float()


def time_ids(rows: int, resolution: int) -> torch.Tensor:
    """SDXL's micro-conditioning for square, uncropped training pictures at `resolution`."""
    return torch.tensor([[resolution, resolution, 0, 0, resolution, resolution]], dtype=torch.float32).repeat(rows, 1)


class EmbeddingCache:
    """Each prompt's embedding, computed once while the text encoders are frozen: prompts come
    from a few wrappers around two phrases, so after the first steps no text encoder runs."""

    def __init__(self) -> None:
        self._rows: dict[bytes, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    @torch.no_grad()
    def encode(self, text_encoders, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        keys = [row.cpu().numpy().tobytes() for row in ids]
        missing = [k for k, key in enumerate(keys) if key not in self._rows]
        if missing:
            hidden, pooled = encode(text_encoders, ids[missing])
            for j, k in enumerate(missing):
                self._rows[keys[k]] = (hidden[j], None if pooled is None else pooled[j])
        rows = [self._rows[key] for key in keys]
        pooled_rows = [row[1] for row in rows]
        return (torch.stack([row[0] for row in rows]),
                None if pooled_rows[0] is None else torch.stack(pooled_rows))  # type: ignore[arg-type]
