"""`python -m workers.shapes.distill decoder|student`: cheaper parts distilled from a shapes model.

    decoder  a TAESD-style decoder (diffusers' AutoencoderTiny layout) trained to draw what the
             model's own VAE decoder draws, from the latents that decoder meets: encoded training
             pictures, encoded detailed pictures (personal subjects' marks) and the UNet's own
             samples. Written to MODEL/vae_fast.
    student  a 2-step consistency (LCM) student of the model's UNet, as a LoRA
             (workers/shapes/consistency.py). Written to MODEL/unet_lcm_lora.

Both resume from their last Lightning checkpoint in --work-dir, and both score the result
with the prompt-fidelity eval (`imagebooth eval prompts`) before anything is written to the
model folder; `--export` writes it (the engine uses a part only where the model card says so).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightning as L
import torch

from workers.shapes.dataset import CaptionCollate, CaptionedLatents, draw_dataset, to_model_range
from workers.shapes.stages import _trainer

FAST_DECODER_DIR = "vae_fast"
STUDENT_DIR = "unet_lcm_lora"


@dataclass
class DistillConfig:
    pictures: int = 12_000
    detailed: int = 3_000
    sampled: int = 1_536
    decoder_steps: int = 2_000
    decoder_batch: int = 32
    decoder_lr: float = 1e-3
    decoder_edge_weight: float = 20.0
    decoder_channels: int = 32
    decoder_blocks: tuple[int, ...] = (2, 2, 1)
    student_steps: int = 3_000
    student_batch: int = 32
    student_lr: float = 2e-4
    student_rank: int = 32
    guidance_scale: float = 2.0
    eval_prompts: int = 200
    checkpoint_every: int = 250
    seed: int = 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers.shapes.distill", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("decoder", "student"))
    parser.add_argument("--model", type=Path, default=Path(__file__).resolve().parents[2] / "models" / "shapes-v1")
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--eval-prompts", type=int, help="fidelity prompts (default 200)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration")
    parser.add_argument("--export", action="store_true", help="write the trained part into the model folder")
    return parser.parse_args(argv)


TINY = DistillConfig(pictures=64, detailed=16, sampled=16, decoder_steps=4, decoder_batch=8, student_steps=3,
                     student_batch=4, student_rank=4, eval_prompts=4, checkpoint_every=2)


def load_config(args: argparse.Namespace) -> DistillConfig:
    config = TINY if args.tiny else DistillConfig()
    overrides: dict = {}
    if args.steps:
        overrides[f"{args.stage}_steps"] = args.steps
    if args.eval_prompts:
        overrides["eval_prompts"] = args.eval_prompts
    return DistillConfig(**{**config.__dict__, **overrides})


def _parts(model: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    vae = AutoencoderKL.from_pretrained(model / "vae", local_files_only=True).eval().requires_grad_(False)
    unet = UNet2DConditionModel.from_pretrained(model / "unet", local_files_only=True).eval()
    text_encoder = CLIPTextModel.from_pretrained(model / "text_encoder", local_files_only=True).eval()
    return vae, unet, text_encoder, CLIPTokenizer.from_pretrained(model / "tokenizer")


@torch.no_grad()
def _encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Scaled latents (as the UNet sees them) of uint8 pictures."""
    chunks = [vae.encode(to_model_range(pixels[i : i + 256])).latent_dist.mode() for i in range(0, len(pixels), 256)]
    return torch.cat(chunks) * vae.config.scaling_factor


def training_latents(work: Path, config: DistillConfig, vae, size: int):
    """Encoded drawn pictures and their scenes, cached in the work dir."""
    path = work / "latents.pt"
    if path.exists():
        saved = torch.load(path, weights_only=False)
        return saved["latents"], saved["scenes"]
    pixels, scenes = draw_dataset(config.pictures, config.seed + 7, size)
    latents = _encode(vae, pixels)
    torch.save({"latents": latents, "scenes": scenes}, path)
    return latents, scenes


@torch.no_grad()
def sampled_latents(model: Path, count: int, seed: int) -> torch.Tensor:
    """The UNet's own final latents at the card's settings (fp32), 8 seeds per random prompt."""
    from workers.engine import GenerationRequest, ModelRef, get_pipeline
    from workers.engine.sampling import sample_latents
    from workers.shapes.captions import random_caption
    from workers.shapes.world import random_scene

    rng = random.Random(seed)
    loaded = get_pipeline(ModelRef(base=model), "quality")
    batches = []
    for start in range(0, count, 8):
        request = GenerationRequest(prompt=random_caption(random_scene(rng), rng), n=8, seeds=list(range(start, start + 8)),
                                    steps=loaded.defaults.steps, sampler="UniPC", profile="quality")
        batches.append(sample_latents(loaded, request))
    return torch.cat(batches)[:count]


def decoder_data(work: Path, config: DistillConfig, model: Path, vae, size: int):
    """(scaled latents, teacher pixels in [-1, 1] as fp16), cached in the work dir."""
    from workers.shapes.detail import draw_detailed_batch

    path = work / "decoder_data.pt"
    if path.exists():
        saved = torch.load(path)
        return saved["latents"], saved["pixels"]
    flat, _ = training_latents(work, config, vae, size)
    detailed = _encode(vae, draw_detailed_batch(config.detailed, config.seed + 8, size))
    latents = torch.cat([flat, detailed, sampled_latents(model, config.sampled, config.seed + 9)])
    with torch.no_grad():
        teacher = [vae.decode(latents[i : i + 256] / vae.config.scaling_factor).sample.clamp(-1, 1).half()
                   for i in range(0, len(latents), 256)]
    torch.save({"latents": latents, "pixels": torch.cat(teacher)}, path)
    return latents, torch.cat(teacher)


def build_fast_decoder(config: DistillConfig, latent_channels: int):
    from diffusers import AutoencoderTiny

    blocks = len(config.decoder_blocks)
    # Only the decoder is trained and used; AutoencoderTiny's layout keeps the folder loadable
    # by any diffusers tool. Its encoder is left at the smallest size the class allows.
    return AutoencoderTiny(
        latent_channels=latent_channels,
        decoder_block_out_channels=(config.decoder_channels,) * blocks,
        num_decoder_blocks=config.decoder_blocks,
        encoder_block_out_channels=(8,) * blocks,
        num_encoder_blocks=(1,) * blocks,
    )


def train_decoder(config: DistillConfig, model: Path, work: Path):
    from workers.shapes.fast_decoder import FastDecoderTraining

    vae, *_ = _parts(model)
    latents, pixels = decoder_data(work, config, model, vae, vae.config.sample_size)
    L.seed_everything(config.seed, workers=True)
    module = FastDecoderTraining(build_fast_decoder(config, vae.config.latent_channels), config.decoder_lr,
                                 config.decoder_steps, config.decoder_edge_weight)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(latents, pixels),
                                         batch_size=config.decoder_batch, shuffle=True, drop_last=True)
    trainer, resume = _trainer(work, "fast_decoder", config.decoder_steps, config.checkpoint_every)
    trainer.fit(module, loader, ckpt_path=resume)
    return module.decoder.eval().requires_grad_(False)


class _StudentCollate:
    """Captions for every picture (the student is unguided) plus the empty caption's ids,
    which the guided teacher needs for its unconditional half."""

    def __init__(self, scenes, tokenizer, seed: int):
        self.captions = CaptionCollate(scenes, tokenizer, seed=seed, dropout=0.0)
        self.empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length,
                               return_tensors="pt").input_ids

    def __call__(self, batch):
        latents, ids, _ = self.captions(batch)
        return latents, ids, self.empty.expand(len(ids), -1)


def train_student(config: DistillConfig, model: Path, work: Path):
    from workers.shapes.consistency import ConsistencyDistillation, add_student_lora
    from workers.shapes.stages import noise_scheduler

    vae, teacher, text_encoder, tokenizer = _parts(model)
    latents, scenes = training_latents(work, config, vae, vae.config.sample_size)
    L.seed_everything(config.seed, workers=True)
    student = add_student_lora(_parts(model)[1], config.student_rank)
    module = ConsistencyDistillation(teacher, student, text_encoder, noise_scheduler().alphas_cumprod, 1.0,
                                     config.guidance_scale, config.student_lr, config.student_steps)
    loader = torch.utils.data.DataLoader(CaptionedLatents(latents), batch_size=config.student_batch, shuffle=True,
                                         drop_last=True, collate_fn=_StudentCollate(scenes, tokenizer, config.seed))
    trainer, resume = _trainer(work, "student", config.student_steps, config.checkpoint_every)
    trainer.fit(module, loader, ckpt_path=resume)
    return module.student.eval()


def _candidate_folder(model: Path, work: Path, name: str, card: dict) -> Path:
    """A copy of the model folder with `card` laid over its imagebooth_model.json, to score."""
    folder = work / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(model, folder, ignore=shutil.ignore_patterns(FAST_DECODER_DIR, STUDENT_DIR))
    _lay_card(folder, card)
    return folder


def _lay_card(folder: Path, card: dict) -> None:
    card_file = folder / "imagebooth_model.json"
    card_file.write_text(json.dumps({**json.loads(card_file.read_text()), **card}, indent=2) + "\n")


def save_student_lora(student, folder: Path) -> None:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(student))
    StableDiffusionPipeline.save_lora_weights(str(folder / STUDENT_DIR), unet_lora_layers=layers,
                                              safe_serialization=True)


# the student's sampling: LCM's own sampler at 2 steps, unguided (one UNet row per picture)
STUDENT_STEPS, STUDENT_GUIDANCE, STUDENT_SAMPLER = 2, 1.0, "LCM"


@dataclass
class Candidate:
    folder: Path
    sampler: str | None = None  # None: the fast profile's


def decoder_candidate(config: DistillConfig, model: Path, work: Path, export: bool) -> Candidate:
    decoder = train_decoder(config, model, work)
    card = {"fast_decoder": FAST_DECODER_DIR}
    folder = _candidate_folder(model, work, "candidate_decoder", card)
    decoder.save_pretrained(str(folder / FAST_DECODER_DIR), safe_serialization=True)
    if export:
        decoder.save_pretrained(str(model / FAST_DECODER_DIR), safe_serialization=True)
        _lay_card(model, card)
    return Candidate(folder)


def student_candidate(config: DistillConfig, model: Path, work: Path, export: bool) -> Candidate:
    """The student fused into a full copy of the model (its card at the student's settings)."""
    student = train_student(config, model, work)
    if export:
        save_student_lora(student, model)
    folder = _candidate_folder(model, work, "candidate_student",
                               {"steps": STUDENT_STEPS, "guidance_scale": STUDENT_GUIDANCE})
    shutil.rmtree(folder / "unet")
    _merged_unet(student).save_pretrained(str(folder / "unet"), safe_serialization=True)
    return Candidate(folder, STUDENT_SAMPLER)


def _merged_unet(student):
    """A plain UNet with the LoRA's weights folded in (peft layers replaced by their merge)."""
    from peft.tuners.lora import LoraLayer

    for module in student.modules():
        if isinstance(module, LoraLayer):
            module.merge()
    state = {k.replace(".base_layer", ""): v for k, v in student.state_dict().items() if "lora_" not in k}
    unet = type(student).from_config(student.config)
    unet.load_state_dict(state)
    return unet.eval()


def main(argv: list[str] | None = None) -> dict:
    from workers.shapes.evaluate import evaluate

    args = parse_args(argv)
    config = load_config(args)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    build = decoder_candidate if args.stage == "decoder" else student_candidate
    candidate = build(config, args.model, work, args.export)
    scores = {"before": evaluate(args.model, config.eval_prompts, "fast"),
              "after": evaluate(candidate.folder, config.eval_prompts, "fast", sampler=candidate.sampler)}
    (work / f"{args.stage}_scores.json").write_text(json.dumps(scores, indent=2))
    print(json.dumps(scores, indent=2))
    return scores


if __name__ == "__main__":
    main()
