"""Both backends on the tiny model: same pictures, the compile cache, personal models, the A/B."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from workers.engine import GenerationRequest, ModelRef, PipelineCache, generate, parameters_for
from workers.engine.backend_choice import BackendSettings
from workers.engine.model_info import ModelInfo, files_key, part_files
from workers.engine.openvino_backend import OpenVinoBackend
from workers.engine.tiny_model import write_full_finetune, write_lora

pytest.importorskip("openvino")
CPU = torch.device("cpu")
PROMPT = "a red circle on the left"


def make_cache(cache_dir, mode: str, precision: str | None = "f32") -> PipelineCache:
    return PipelineCache(max_personal=2, device=CPU, backend=BackendSettings(mode, cache_dir, precision, rounds=1))


def pixels(loaded, seeds=(5,), **changes) -> np.ndarray:
    values = dict(prompt=PROMPT, n=len(seeds), seeds=list(seeds), profile=loaded.profile.name, steps=4)
    result = generate(loaded, GenerationRequest(**{**values, **changes}))
    return np.stack([np.asarray(image).astype(np.int16) for image in result.images])


def torch_fp32(cache_dir, folder, personal=None):
    """The fast profile's sampler and steps on PyTorch in full precision: the reference."""
    cache = PipelineCache(device=CPU, backend=BackendSettings("torch", cache_dir))
    loaded = cache.get(ModelRef(base=folder, personal=personal), "fast")
    for module in (loaded.pipe.unet, loaded.pipe.vae, loaded.pipe.text_encoder):
        module.to(torch.float32)
    return loaded


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """One compile cache for the tests that are not about the cache: each export is paid once."""
    return tmp_path_factory.mktemp("blobs")


@pytest.fixture()
def compiled(blobs, tiny_model_dir):
    return make_cache(blobs, "openvino").get(ModelRef(base=tiny_model_dir), "fast")


def test_compiled_fp32_draws_the_pictures_pytorch_draws(compiled, tmp_path, tiny_model_dir):
    assert isinstance(compiled.backend, OpenVinoBackend) and compiled.backend.name == "openvino-f32"
    reference = torch_fp32(tmp_path / "unused", tiny_model_dir)
    for seeds, guidance in (((5,), None), ((1, 2, 3), None), ((4,), 1.0)):  # with and without CFG
        difference = np.abs(pixels(compiled, seeds, guidance_scale=guidance) -
                            pixels(reference, seeds, guidance_scale=guidance))
        assert difference.max() <= 2, (seeds, guidance)


def test_bf16_precision_stays_close(blobs, tmp_path, tiny_model_dir):
    loaded = make_cache(blobs, "openvino", "bf16").get(ModelRef(base=tiny_model_dir), "fast")
    reference = torch_fp32(tmp_path / "unused", tiny_model_dir)
    assert loaded.backend.name == "openvino-bf16"
    assert np.abs(pixels(loaded) - pixels(reference)).mean() < 4


def test_each_batch_size_gets_its_own_static_compile_and_seeds_stay_independent(compiled):
    batch = pixels(compiled, (11, 22, 33))
    for k, seed in enumerate((11, 22, 33)):
        assert np.abs(batch[k] - pixels(compiled, (seed,))[0]).max() <= 2
    shapes = {shapes[0][0] for shapes in compiled.backend.unet._compiled}
    assert shapes == {2, 6}  # [uncond; cond] rows for n=1 and n=3, each compiled with fixed shapes


def test_restart_imports_the_cached_blobs_without_converting(tmp_path, tiny_model_dir, monkeypatch):
    blobs = tmp_path / "blobs"
    first = pixels(make_cache(blobs, "openvino").get(ModelRef(base=tiny_model_dir), "fast"))
    files = sorted(path.name for path in blobs.iterdir())
    assert any(name.endswith(".blob") for name in files) and any(name.endswith(".xml") for name in files)

    import openvino

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again despite a warm cache")

    monkeypatch.setattr(openvino, "convert_model", no_conversion)
    monkeypatch.setattr(openvino.Core, "compile_model", no_conversion)
    again = pixels(make_cache(blobs, "openvino").get(ModelRef(base=tiny_model_dir), "fast"))
    assert np.array_equal(first, again)
    assert sorted(path.name for path in blobs.iterdir()) == files


WARM_START = """
import sys
from pathlib import Path
from workers.engine import ModelRef, configure_process_cache, process_cache, warm_up
from workers.engine.backend_choice import BackendSettings
configure_process_cache(backend=BackendSettings("openvino", Path(sys.argv[2]), "f32"))
print(warm_up(ModelRef(base=Path(sys.argv[1]))).backend)
print(process_cache().get(ModelRef(base=Path(sys.argv[1])), "fast").modules.loaded)
print(" ".join(sorted(sys.modules)))
"""
# what only the PyTorch side needs (its pipeline classes and networks, LoRA layers)
PYTORCH_SIDE = ("diffusers.models.unets.unet_2d_condition", "diffusers.models.autoencoders.autoencoder_kl",
                "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion", "peft",
                "transformers.models.clip.modeling_clip")


def test_a_warm_start_serves_from_the_cache_without_the_pytorch_modules(tmp_path, tiny_model_dir):
    import os
    import subprocess
    import sys
    from pathlib import Path

    blobs = tmp_path / "blobs"
    cold = make_cache(blobs, "openvino").get(ModelRef(base=tiny_model_dir), "fast")
    assert cold.modules.loaded  # an export reads the weights
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", WARM_START, str(tiny_model_dir), str(blobs)], cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True, check=True,
                          timeout=300)
    backend, modules_read, imported = done.stdout.splitlines()[-3:]
    assert (backend, modules_read) == ("openvino-f32", "False")
    assert not set(imported.split()) & set(PYTORCH_SIDE)
    # and the pictures are the ones a cold start draws
    warm = make_cache(blobs, "openvino").get(ModelRef(base=tiny_model_dir), "fast")
    assert not warm.modules.loaded
    assert np.array_equal(pixels(warm), pixels(cold))


def test_cache_key_follows_the_weights_files(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    copy = shutil.copytree(tiny_model_dir / "unet", tmp_path / "unet")
    assert files_key(part_files(copy)) == files_key(part_files(tiny_model_dir / "unet"))  # content, not place
    [weights] = copy.glob("*.safetensors")
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, weights)
    assert files_key(part_files(copy)) != files_key(part_files(tiny_model_dir / "unet"))


def test_full_finetune_compiles_its_own_unet_and_shares_the_rest(blobs, tmp_path, tiny_model_dir):
    cache = make_cache(blobs, "openvino")
    base = cache.get(ModelRef(base=tiny_model_dir), "fast")
    folder = write_full_finetune(tiny_model_dir, tmp_path / "full", scale=1.05)
    personal = cache.get(ModelRef(base=tiny_model_dir, personal=folder), "fast")
    assert personal.backend.unet is not base.backend.unet
    assert personal.backend.unet.weights != base.backend.unet.weights
    assert personal.backend.text is base.backend.text and personal.backend.decoder is base.backend.decoder
    reference = torch_fp32(tmp_path / "unused", tiny_model_dir, folder)
    assert np.abs(pixels(personal) - pixels(reference)).max() <= 2
    assert np.abs(pixels(personal) - pixels(base)).max() > 2


def test_lora_on_a_compiled_base_runs_its_unet_on_pytorch(blobs, tmp_path, tiny_model_dir):
    from workers.engine.adapters import AdapterBackend

    cache = make_cache(blobs, "openvino")
    base = cache.get(ModelRef(base=tiny_model_dir), "fast")
    folder = write_lora(tiny_model_dir, tmp_path / "lora", with_text_encoder=False)
    personal = cache.get(ModelRef(base=tiny_model_dir, personal=folder), "fast")
    # no compiled copy: the adapter is on the base's PyTorch UNet; text and decoder stay compiled
    assert isinstance(personal.backend, AdapterBackend) and personal.backend.base is base.backend
    assert personal.pipe.unet is base.pipe.unet and personal.backend.name.startswith("torch-")
    reference = torch_fp32(tmp_path / "unused", tiny_model_dir, folder)
    assert np.abs(pixels(personal) - pixels(reference)).mean() <= 1.5
    assert np.abs(pixels(personal) - pixels(base)).max() > 2
    assert np.array_equal(pixels(base), pixels(cache.get(ModelRef(base=tiny_model_dir), "fast")))


def test_auto_picks_by_measurement_says_which_and_the_png_names_it(blobs, tmp_path, tiny_model_dir, caplog,
                                                                   monkeypatch):
    cache_dir = tmp_path / "own-blobs"
    with caplog.at_level(logging.INFO, logger="workers.engine.backend_choice"):
        loaded = make_cache(cache_dir, "auto").get(ModelRef(base=tiny_model_dir), "fast")
    [message] = [r.getMessage() for r in caplog.records if "warm-up A/B" in r.getMessage()]
    assert loaded.backend.name in message and "torch-" in message and "openvino-f32" in message
    result = generate(loaded, GenerationRequest(prompt=PROMPT, seeds=[1]))
    assert result.backend == loaded.backend.name
    assert parameters_for(result, 0).extra == {"Backend": loaded.backend.name}

    # a restart on the same CPU reuses the measured choice instead of timing PyTorch again
    import workers.engine.sampling as sampling

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(sampling, "run_backend_once", no_measuring)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="workers.engine.backend_choice"):
        again = make_cache(cache_dir, "auto").get(ModelRef(base=tiny_model_dir), "fast")
    assert again.backend.name == loaded.backend.name
    assert any("from choice-" in r.getMessage() for r in caplog.records)


def test_quality_and_forced_torch_stay_on_pytorch(tmp_path, tiny_model_dir):
    assert make_cache(tmp_path / "a", "auto").get(ModelRef(base=tiny_model_dir), "quality").backend.name == "torch-fp32"
    assert make_cache(tmp_path / "b", "torch").get(ModelRef(base=tiny_model_dir), "fast").backend.name.startswith("torch")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_auto_does_not_export_a_large_unet_at_load(tmp_path, tiny_model_dir, monkeypatch, caplog):
    import workers.engine.backend_choice as backend_choice

    size = backend_choice.unet_weight_bytes(ModelInfo.of_folder(tiny_model_dir))
    assert size > 0
    monkeypatch.setattr(backend_choice, "AUTO_EXPORT_MAX_UNET_BYTES", size - 1)
    with caplog.at_level(logging.INFO, logger="workers.engine.backend_choice"):
        loaded = make_cache(tmp_path / "blobs", "auto").get(ModelRef(base=tiny_model_dir), "fast")
    assert loaded.backend.name.startswith("torch-") and not (tmp_path / "blobs").exists()
    assert any("not exporting" in r.getMessage() for r in caplog.records)
    # forcing the compiled backend still exports it
    assert make_cache(tmp_path / "forced", "openvino").get(ModelRef(base=tiny_model_dir), "fast").backend.name.startswith("openvino")


def with_fast_decoder(tiny_model_dir, folder):
    """The tiny model plus a (random) TAESD-style decoder that its card names."""
    from diffusers import AutoencoderTiny

    shutil.copytree(tiny_model_dir, folder)
    torch.manual_seed(3)
    AutoencoderTiny(decoder_block_out_channels=(8, 8), num_decoder_blocks=(1, 0), encoder_block_out_channels=(8, 8),
                    num_encoder_blocks=(1, 1)).save_pretrained(folder / "vae_fast", safe_serialization=True)
    (folder / "imagebooth_model.json").write_text(json.dumps({"name": "tiny-fast", "fast_decoder": "vae_fast"}))
    return folder


@pytest.mark.parametrize("mode", ["torch", "openvino"])
def test_fast_profile_decodes_with_the_cards_fast_decoder(blobs, tmp_path, tiny_model_dir, mode):
    folder = with_fast_decoder(tiny_model_dir, tmp_path / "with-decoder")
    cache = make_cache(blobs, mode)
    fast = cache.get(ModelRef(base=folder), "fast")
    plain = make_cache(blobs, mode).get(ModelRef(base=tiny_model_dir), "fast")
    quality = cache.get(ModelRef(base=folder), "quality")
    assert np.abs(pixels(fast) - pixels(plain)).max() > 8  # a different decoder drew it
    # quality keeps the full VAE: same pictures as the model without a fast decoder
    reference = make_cache(blobs, mode).get(ModelRef(base=tiny_model_dir), "quality")
    assert np.array_equal(pixels(quality, sampler="UniPC"), pixels(reference, sampler="UniPC"))


def test_the_engine_backend_setting_forces_pytorch_without_an_export(tiny_model_dir, tmp_path, env_override):
    # an operator's way out of the load-time export (minutes and gigabytes at SD 1.5 size on a CPU)
    env_override(ENGINE_BACKEND="torch", DATA_DIR=str(tmp_path / "data"))
    loaded = PipelineCache(device=CPU).get(ModelRef(base=tiny_model_dir), "fast")
    assert not isinstance(loaded.backend, OpenVinoBackend) and loaded.backend.name.startswith("torch")
    assert not (tmp_path / "data" / "cache" / "openvino").exists()  # nothing was exported
    env_override(ENGINE_BACKEND="openvino")
    forced = PipelineCache(device=CPU).get(ModelRef(base=tiny_model_dir), "fast")
    assert isinstance(forced.backend, OpenVinoBackend)


@pytest.mark.parametrize("mode", ["torch", "openvino"])
def test_batch_sizes_are_warmed_only_for_static_shapes(tiny_model_dir, tmp_path, env_override, monkeypatch, mode):
    import workers.engine.batching as batching
    from workers.engine.loading import process_cache

    env_override(ENGINE_BACKEND=mode, DATA_DIR=str(tmp_path / "data"))
    process_cache().clear()
    runs: list[int] = []
    real = batching.generate_batch
    monkeypatch.setattr(batching, "generate_batch", lambda model, members: runs.append(members[0].request.n)
                        or real(model, members))
    try:
        warmed = batching.warm_batch_sizes(ModelRef(base=tiny_model_dir), range(2, 4))
        static = process_cache().get(ModelRef(base=tiny_model_dir), "fast").backend.static_shapes
    finally:
        process_cache().clear()
    assert static is (mode == "openvino") and warmed is static
    assert runs == ([2, 3] if static else [])  # eager PyTorch takes any batch size as it comes
