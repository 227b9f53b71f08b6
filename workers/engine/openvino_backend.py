"""The compiled CPU backend: the same weights through OpenVINO, static shapes, cached on disk.

Each network is exported once with `openvino.convert_model` from its fp32 PyTorch module (a
free batch dimension, everything else fixed) and saved as IR; each batch size is then compiled
on its own with every dimension static, which is what pays on CPU (measured in the issue:
104 -> 74 ms per picture at batch 1 against a dynamic batch). Compiled blobs are written to the
cache folder under a key made of the weights' hash, the shape, the precision, the OpenVINO
version and the CPU's name, so a restarted worker imports them instead of converting and
compiling again, and a personal model whose part is the base's (same files) shares the blob.
The weights' key is the hash of the part's files (model_info.files_key), so a warm start
finds its blobs without reading the weights into PyTorch.

Precision: bf16 where the CPU has it natively (AVX512-BF16 / AMX), else fp32; OpenVINO's
`INFERENCE_PRECISION_HINT` keeps the weights' maths in that precision with fp32 accumulation.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.engine.backends import decoder_input
from workers.engine.model_info import ModelInfo, PartSource, files_key

logger = logging.getLogger(__name__)

EXPORT_VERSION = "1"  # bump when the exported graph changes (wrapper modules below)


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class _Unet(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, embeddings):
        return self.unet(sample, timestep, encoder_hidden_states=embeddings, return_dict=False)[0]


class _Text(torch.nn.Module):
    def __init__(self, text_encoder):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids):
        return self.text_encoder(input_ids)[0]


class _Decoder(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, latents):
        return self.decoder.decode(latents, return_dict=False)[0]


_CORE = None


def _core():
    """One OpenVINO runtime per process (it owns the CPU plugin and its thread pool)."""
    global _CORE
    if _CORE is None:
        import openvino as ov

        _CORE = ov.Core()
    return _CORE


def cpu_name() -> str:
    return str(_core().get_property("CPU", "FULL_DEVICE_NAME"))


class CompiledPart:
    """One network: its IR (exported on first need) and a compiled model per input shape.

    `example(rows)` gives example inputs with `rows` in the batch dimension; every input's
    first dimension is the batch (the UNet's timestep is a scalar and has none).
    """

    def __init__(self, name: str, wrapper: Callable[[], torch.nn.Module], files: list[Path], example,
                 cache_dir: Path, precision: str, threads: int):
        self.name, self.example, self.cache_dir = name, example, Path(cache_dir)
        self.precision, self.threads = precision, threads
        self.weights = files_key(files)
        self._wrapper: Callable[[], torch.nn.Module] | None = wrapper  # built only to export
        self._model = None
        # shape -> [infer request or None until compiled, its lock]: a shape compiling (the
        # worker warms batch sizes in the background) never holds up calls of other shapes
        self._compiled: dict[tuple, list[Any]] = {}
        self._lock = threading.Lock()
        self.compile_s = 0.0  # seconds spent converting/compiling/importing (diagnostics)

    def _key(self, *parts) -> str:
        import openvino as ov

        text = "|".join(map(str, (EXPORT_VERSION, ov.__version__, cpu_name(), self.name, self.weights, *parts)))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _ir_path(self) -> Path:
        return self.cache_dir / f"{self.name}-{self._key('ir')}.xml"

    def _ir(self):
        """The exported model (dynamic batch), from the cache or converted now."""
        import openvino as ov

        if self._model is not None:
            return self._model
        path = self._ir_path()
        if path.exists():
            self._model = _core().read_model(str(path))
            return self._model
        example = self.example(1)
        shapes = [ov.PartialShape([-1, *value.shape[1:]]) if value.dim() else ov.PartialShape([]) for value in example]
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer notes each shape check it freezes; the batch is the only free dimension
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            if self._wrapper is None:
                raise RuntimeError(f"openvino {self.name}: {path.name} left the cache after the export")
            model = ov.convert_model(self._wrapper().eval(), example_input=tuple(example), input=shapes)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.xml")
        ov.save_model(model, str(partial), compress_to_fp16=False)
        os.replace(partial.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(partial, path)
        self._model = model
        return model

    def _compile(self, shapes: tuple) -> Any:
        import time

        started = time.perf_counter()
        core = _core()
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1}
        blob = self.cache_dir / f"{self.name}-{self._key(shapes, self.precision, self.threads)}.blob"
        if blob.exists():
            compiled = core.import_model(blob.read_bytes(), "CPU", config)
        else:
            model = self._ir().clone()
            model.reshape({index: list(shape) for index, shape in enumerate(shapes)})
            compiled = core.compile_model(model, "CPU", config)
            partial = blob.with_name(f"{blob.name}.{os.getpid()}.partial")
            partial.write_bytes(compiled.export_model().getvalue())  # a BytesIO in this API
            os.replace(partial, blob)
        self.compile_s += time.perf_counter() - started
        logger.info("openvino %s %s (%s) ready in %.2fs", self.name, shapes, self.precision,
                    time.perf_counter() - started)
        return compiled.create_infer_request()

    def run(self, *inputs: np.ndarray) -> torch.Tensor:
        shapes = tuple(tuple(value.shape) for value in inputs)
        with self._lock:
            entry = self._compiled.setdefault(shapes, [None, threading.Lock()])
        with entry[1]:  # one infer request per shape: calls on it must not overlap
            if entry[0] is None:
                entry[0] = self._compile(shapes)
            entry[0].infer(list(inputs), share_inputs=True)
            return torch.from_numpy(entry[0].get_output_tensor(0).data.copy())

    def release_source(self) -> None:
        """Export now if the cache has no IR yet, then forget the PyTorch module: the caller may
        cast it to bf16 in place for the PyTorch backend, and the IR is all later shapes need."""
        if not self._ir_path().exists():
            self._ir()
        self._wrapper = None


class OpenVinoBackend:
    """The text encoder, UNet and decoder of one pipeline, compiled for this CPU."""

    def __init__(self, text: CompiledPart, unet: CompiledPart, decoder: CompiledPart, decoder_config):
        self.text, self.unet, self.decoder, self.decoder_config = text, unet, decoder, decoder_config
        self.name = f"openvino-{unet.precision}"
        self.static_shapes = True

    def with_parts(self, **parts: CompiledPart) -> OpenVinoBackend:
        """The same backend with some parts replaced (a personal model's own UNet)."""
        merged = {"text": self.text, "unet": self.unet, "decoder": self.decoder, **parts}
        return OpenVinoBackend(merged["text"], merged["unet"], merged["decoder"], self.decoder_config)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    input_ids_2: torch.Tensor | None = None) -> torch.Tensor:
        return self.text.run(input_ids.to(torch.int64).numpy())

    def predict_noise(self, model_input: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        timestep = np.asarray(float(t), dtype=np.float32)
        return self.unet.run(model_input.float().contiguous().numpy(), timestep, embeddings.float().contiguous().numpy())

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder.run(decoder_input(latents, self.decoder_config).float().contiguous().numpy())


def _precision() -> str:
    from workers.engine.profiles import cpu_has_native_bf16

    return "bf16" if cpu_has_native_bf16() else "f32"


def _wrapped(wrapper_class, module: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    return wrapper_class(module())


def compile_parts(info: ModelInfo, sources: dict[str, PartSource], cache_dir: Path,
                  precision: str | None = None) -> dict[str, CompiledPart]:
    """CompiledParts for `sources` (keyed "text", "unet", "decoder"), exported where the
    cache has none yet.

    Call before the modules are cast for the PyTorch backend: an export must see the fp32
    weights.
    """
    precision = precision or _precision()
    threads = torch.get_num_threads()
    tokens, width = info.tokenizer.model_max_length, info.text_config["hidden_size"]
    config = info.unet_config
    latent = (config["in_channels"], config["sample_size"], config["sample_size"])
    latent_channels = info.decoder_config["latent_channels"]
    wrappers = {"text": _Text, "unet": _Unet, "decoder": _Decoder}
    examples = {
        "text": lambda rows: [torch.zeros(rows, tokens, dtype=torch.int64)],
        "unet": lambda rows: [torch.randn(rows, *latent), torch.tensor(999.0), torch.randn(rows, tokens, width)],
        "decoder": lambda rows: [torch.randn(rows, latent_channels, *latent[1:])],
    }
    parts = {}
    for name, source in sources.items():
        wrapper = functools.partial(_wrapped, wrappers[name], source.module)
        part = CompiledPart(name, wrapper, source.files, examples[name], cache_dir, precision, threads)
        part.release_source()
        parts[name] = part
    return parts
