"""The inference engine: warm pipelines, our own sampling loop, speed profiles, PNG metadata.

The worker's `generation.run` task needs only these names:

    from workers.engine import GenerationRequest, ModelRef, generate_images, png_bytes, parameters_for
    result = generate_images(ModelRef(base=Path("models/shapes-v1")), request, on_progress)
    for k, image in enumerate(result.images):
        data = png_bytes(image, parameters_for(result, k))

Each loaded pipeline runs its networks on a backend (backends.py): PyTorch, or on CPUs the
OpenVINO-compiled one (openvino_backend.py), picked for the fast profile by a warm-up A/B at
load (backend_choice.py); `result.backend` names it and the PNG parameters carry it.

Importing this package is cheap (torch is imported, diffusers only on first load), and the
web process never imports it (ARCHITECTURE.md rule 1). A base served from a warm compile
cache never reads its PyTorch modules (loading.TorchModules), so a worker start imports no
diffusers model code, peft or transformers modelling code.
"""

from workers.engine.inputs import GenerationRequest, GenerationResult, RequestError, Timing, check_request
from workers.engine.loading import (
    LoadedPipeline,
    ModelRef,
    PipelineCache,
    configure_process_cache,
    get_pipeline,
    process_cache,
)
from workers.engine.png_metadata import (
    ImageParameters,
    format_parameters,
    parameters_for,
    parse_parameters,
    png_bytes,
    read_parameters,
    save_png,
)
from workers.engine.profiles import DEFAULT_PROFILE, Profile, resolve_profile
from workers.engine.sampling import generate, generate_images, warm_up

__all__ = [
    "DEFAULT_PROFILE",
    "GenerationRequest",
    "GenerationResult",
    "ImageParameters",
    "LoadedPipeline",
    "ModelRef",
    "PipelineCache",
    "Profile",
    "RequestError",
    "Timing",
    "check_request",
    "configure_process_cache",
    "format_parameters",
    "generate",
    "generate_images",
    "get_pipeline",
    "parameters_for",
    "parse_parameters",
    "png_bytes",
    "process_cache",
    "read_parameters",
    "resolve_profile",
    "save_png",
    "warm_up",
]
