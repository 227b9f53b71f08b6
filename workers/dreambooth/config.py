"""DreamBooth job configuration: a preset per base model, a YAML file, per-job overrides."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).parent / "presets"
METHODS = ("full", "lora")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
# adamw-8bit (adamw8bit.py): Adam's moments in 8 bits; checkpoints and optimizer memory about half
OPTIMIZERS = ("adamw", "adamw-8bit")
# auto: the subject reader on the bundled model's world, the held-out loss and drift elsewhere
CHECKPOINT_SCORING = ("auto", "reader", "loss", "off")
TRACKERS = ("tensorboard", "wandb")  # wandb runs offline (never the network), under the work folder


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 400
    learning_rate: float = 2e-4
    text_encoder_learning_rate: float = 1e-4
    prior_preservation: bool = True
    prior_loss_weight: float = 1.0
    num_class_images: int = 50
    class_image_steps: int = 8
    # validation pictures: this many seeds for each of the 4 validation prompts, drawn at
    # `validation_steps` sampler steps (0: the base model card's steps); 0 pictures: none
    validation_images: int = 4
    validation_steps: int = 0
    # training resolution in pixels (0: the model's own, e.g. 512 for SD 1.5, 1024 for SDXL)
    resolution: int = 0
    gradient_checkpointing: bool = False  # recompute the UNet's activations: far less memory, ~30% slower
    method: str = "full"
    lora_rank: int = 8
    optimizer: str = "adamw"
    batch_size: int = 1  # instance pictures per step (and as many class pictures)
    accumulate_grad_batches: int = 1
    gradient_clip: float = 1.0
    precision: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    checkpoint_every: int = 100
    keep_checkpoints: int = 1
    train_text_encoder: bool = True
    background_variants: bool = False  # backgrounds.py: photos with a flat background on other colours
    # Best step (best_step.py): photos kept out of training to score checkpoints on (at least
    # 3 are always trained on), and how checkpoints are scored.
    holdout_photos: int = 0
    checkpoint_scoring: str = "auto"
    tracker: str = "tensorboard"
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "steps": 1 <= self.steps <= 20_000,
            "learning_rate": 0 < self.learning_rate < 1,
            "text_encoder_learning_rate": 0 <= self.text_encoder_learning_rate < 1,
            "prior_loss_weight": self.prior_loss_weight >= 0,
            "num_class_images": 0 <= self.num_class_images <= 2_000,
            "validation_images": 0 <= self.validation_images <= 16,
            "validation_steps": 0 <= self.validation_steps <= 150,
            "resolution": self.resolution == 0 or (64 <= self.resolution <= 2048 and self.resolution % 64 == 0),
            "method": self.method in METHODS,
            "precision": self.precision in PRECISIONS,
            "optimizer": self.optimizer in OPTIMIZERS,
            "batch_size": 1 <= self.batch_size <= 64,
            "accumulate_grad_batches": self.accumulate_grad_batches >= 1,
            "devices": self.devices >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "holdout_photos": 0 <= self.holdout_photos <= 2,
            "checkpoint_scoring": self.checkpoint_scoring in CHECKPOINT_SCORING,
            "tracker": self.tracker in TRACKERS,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid fine-tune settings: {', '.join(bad)}")

    def with_overrides(self, **overrides) -> FinetuneConfig:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown fine-tune settings: {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    def resolved_precision(self, family: str = "sd") -> str:
        if self.precision != "auto":
            return self.precision
        import torch

        # bf16 pays on GPUs that have it; on this CPU it gained ~8% and costs accuracy. SDXL's
        # frozen 3.5B weights are held in bf16 (14 GB in fp32), so it runs bf16-mixed anywhere.
        if family == "sdxl" or (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            return "bf16-mixed"
        return "32-true"


def preset_name_for(base_model: Path) -> str:
    """The bundled model (and anything trained by its recipe) has its own preset."""
    return "shapes" if (Path(base_model) / "recipe.json").exists() else "stable-diffusion"


def load_config(base_model: Path, config_file: Path | None = None, **overrides) -> FinetuneConfig:
    """Preset for the base model, then the YAML file, then per-job overrides. A preset's
    `full_fine_tune` settings replace its own when the method comes out as "full" (a LoRA's
    learning rate would wreck a full fine-tune), unless the file or the job sets them."""
    values = yaml.safe_load((PRESET_DIR / f"{preset_name_for(base_model)}.yaml").read_text())
    for_full = values.pop("full_fine_tune", {})
    chosen = (yaml.safe_load(Path(config_file).read_text()) or {}) if config_file is not None else {}
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    if chosen.get("method", values["method"]) == "full":
        values.update(for_full)
    return FinetuneConfig(**values).with_overrides(**chosen)
