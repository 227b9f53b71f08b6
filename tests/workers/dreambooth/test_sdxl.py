"""SDXL DreamBooth LoRA on the tiny random SDXL model: both text encoders frozen with their
embeddings cached, pooled embeddings and add_time_ids, small training state, checkpoint scores,
and a personal model the engine serves as an adapter on its SDXL base (and nowhere else)."""
import json

import pytest
import torch
from safetensors import safe_open

from workers import random_models
from workers.dreambooth.config import load_config
from workers.dreambooth.subjects import EVAL_SUBJECTS, subject_photos
from workers.dreambooth.train import FinetuneJob, Hooks, load_base, run_finetune


@pytest.fixture(scope="module")
def trained(tiny_sdxl, tmp_path_factory):
    """One LoRA job: 4 photos (one held out for the scores), a small preset-driven run."""
    root = tmp_path_factory.mktemp("sdxl-job")
    config = load_config(tiny_sdxl, steps=4, num_class_images=2, class_image_steps=2, checkpoint_every=2,
                         validation_images=1, validation_steps=2, learning_rate=0.05)
    job = FinetuneJob(images=subject_photos(EVAL_SUBJECTS[0], 4, root / "photos"), class_noun="circle",
                      token="sks", base_model=tiny_sdxl, out_dir=root / "model", work_dir=root / "work",
                      class_bank=root / "bank", config=config)
    phases: list[str] = []
    card = run_finetune(job, Hooks(on_phase=phases.append))
    return job, card, phases


def test_sdxl_lora_job_trains_the_unet_only_and_exports_a_small_lora(trained, tiny_sdxl):
    job, card, phases = trained
    assert phases == ["preparing", "class_images", "training", "validating", "done"]
    assert card["method"] == "lora" and card["base_architecture"]["family"] == "sdxl"
    lora = job.out_dir / "pytorch_lora_weights.safetensors"
    with safe_open(str(lora), framework="pt") as weights:
        keys = list(weights.keys())
    # text encoders frozen (the preset's default): UNet LoRA layers only, and no kohya file for SDXL
    assert keys and all(key.startswith("unet.") and "lora" in key for key in keys)
    assert not (job.out_dir / "lora_kohya.safetensors").exists()
    # validation pictures: the config's count (1 per prompt), at the training resolution
    assert len(card["validation"]) == 4
    # every checkpoint scored on the held-out photo and the class prompt's drift
    assert [entry["step"] for entry in card["checkpoints"]["checkpoints"]] == [2, 4]
    assert all({"heldout_loss", "prior_drift"} <= set(entry["scores"]) for entry in card["checkpoints"]["checkpoints"])


def test_sdxl_training_state_holds_only_the_lora_and_its_optimizer(trained):
    job, _, _ = trained
    checkpoint = torch.load(job.work_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert checkpoint["state_dict"] and all("lora" in key and key.startswith("unet.") for key in checkpoint["state_dict"])
    assert all(value.dtype == torch.float32 for value in checkpoint["state_dict"].values())  # trained in fp32
    assert len(checkpoint["optimizer_states"][0]["state"]) == len(checkpoint["state_dict"])


def test_sdxl_conditioning_caches_frozen_embeddings_with_pooled_and_time_ids(tiny_sdxl):
    from workers.dreambooth.conditioning import token_ids
    from workers.dreambooth.module import DreamBoothModule

    parts = load_base(tiny_sdxl)
    assert parts.family == "sdxl" and len(parts.text_encoders) == len(parts.tokenizers) == 2
    assert parts.unet.dtype == torch.bfloat16 and parts.vae.dtype == torch.float32
    module = DreamBoothModule(parts.unet, parts.text_encoders, parts.scheduler, load_config(tiny_sdxl), 64)
    ids = token_ids(parts.tokenizers, ["a sks circle", "a circle", "a sks circle"])
    assert ids.shape[:2] == (3, 2)
    latents = torch.randn(3, 4, 8, 8)
    with module.inference():
        prediction = module.predict(latents, torch.tensor([10, 500, 900]), ids)
    assert prediction.shape == latents.shape and torch.isfinite(prediction.float()).all()
    assert module.embeddings is not None and len(module.embeddings) == 2  # two distinct prompts, encoded once each


def test_the_sdxl_personal_model_is_an_adapter_on_its_base_and_refused_on_another(trained, tiny_sdxl, random_model_builds):
    from app.catalog.checkpoint import IncompatibleModel
    from workers.engine.inputs import GenerationRequest
    from workers.engine.loading import ModelRef, PipelineCache
    from workers.engine.sampling import generate

    job, _, _ = trained
    cache = PipelineCache(max_personal=1, device=torch.device("cpu"))
    result = generate(cache.get(ModelRef(base=tiny_sdxl, personal=job.out_dir), "quality"),
                      GenerationRequest(prompt="a sks circle", seeds=[0], steps=2, profile="quality"))
    assert result.images[0].size == (32, 32)
    adapters = cache.adapter_set(tiny_sdxl, "quality")
    assert adapters is not None and len(adapters.loaded) == 1
    tiny_sd = random_models.cached_model("tiny-sd", random_model_builds)
    with pytest.raises(IncompatibleModel, match=r"trained on a SDXL base model .* cannot run on"):
        cache.get(ModelRef(base=tiny_sd, personal=job.out_dir), "quality")
    assert json.loads((job.out_dir / "imagebooth_model.json").read_text())["base_architecture"]["family"] == "sdxl"


def test_a_full_sdxl_finetune_is_served_with_its_own_second_text_encoder(tiny_sdxl, tmp_path):
    from transformers import CLIPTextModelWithProjection

    from workers.engine.inputs import GenerationRequest
    from workers.engine.loading import ModelRef, PipelineCache
    from workers.engine.sampling import generate

    folder = tmp_path / "full"
    encoder = CLIPTextModelWithProjection.from_pretrained(tiny_sdxl / "text_encoder_2")
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.mul_(0.5)
    encoder.save_pretrained(folder / "text_encoder_2", safe_serialization=True)
    cache = PipelineCache(device=torch.device("cpu"))
    base = cache.get(ModelRef(base=tiny_sdxl), "quality")
    personal = cache.get(ModelRef(base=tiny_sdxl, personal=folder), "quality")
    assert personal.pipe.text_encoder_2 is not base.pipe.text_encoder_2
    assert personal.pipe.text_encoder is base.pipe.text_encoder and personal.pipe.unet is base.pipe.unet
    mine = dict(personal.pipe.text_encoder_2.named_parameters())
    assert all(torch.equal(mine[name], value) for name, value in encoder.named_parameters())

    def pixels(loaded):
        request = GenerationRequest(prompt="a sks circle", seeds=[0], steps=2, profile="quality")
        return torch.tensor(list(generate(loaded, request).images[0].getdata()), dtype=torch.float32)

    assert (pixels(personal) - pixels(base)).abs().max() > 0  # its conditioning, not the base's
