"""The released STARFlow-V 7B as a Pipeline: flan-t5-xl text, Wan2.2 VAE, one GPU.

    pipeline = load_large_pipeline("apple/starflow", accept_license=True, offload=True)

Memory plan (no torch.distributed): the flow and its KV cache in bf16; the text encoder visits
the GPU only while encoding; the VAE decodes one latent frame at a time (streaming); `offload`
keeps the shallow blocks and the denoiser in CPU memory between uses; `window` shortens the
deep block's attention window (latent frames) for 24 GB cards; `vae_on_cpu` runs the VAE in
CPU memory (16 GB cards).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..api import EngineError
from ..checkpoint import build_model, expected_manifest
from ..device import pick_device, pick_dtype
from ..offload import enable_offload
from ..pipeline import Pipeline, PipelineSettings, model_info
from .config_file import ModelSpec, config_for, is_config_json
from .deps import require_large
from .hub import (
    HubSource,
    ModelManager,
    compare_shapes,
    convert_once,
    is_repo_id,
    tensor_shapes,
)
from .parts import locate_parts
from .sizes import FPS, GUIDANCE, TRAIN_FRAMES, frame_size, latent_frames
from .text import NOISE_STD, PromptTemplate, T5TextEncoder
from .vae import WanCodec

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = Path.home() / ".cache" / "starflow-studio" / "models"


@dataclass(frozen=True)
class LargeOptions:
    aspect_ratio: str = "16:9"
    side: int = 640  # frame area = side * side, as the reference
    offload: bool = False
    window: int | None = None  # deep-block attention window in latent frames (None: whole clip)
    text_encoder: str | None = None  # None: the config's (the 7B: google/flan-t5-xl)
    vae: str | None = None  # None: the config's (the 7B: Wan-AI/Wan2.2-TI2V-5B-Diffusers)
    config: str | None = None  # .yaml/.json; None: <checkpoint>.yaml/.yml/.json, else the 7B's
    jacobi_block_size: int = 64  # the reference sample.py's defaults
    jacobi_max_iter: int = 32
    jacobi_threshold: float = 0.005
    # latent frames re-encoded when the window slides (below the window): the reference
    # sample.py's context_length, 16 of 21 (a re-encode every 5 new frames)
    context: int | None = 16
    models_dir: Path = DEFAULT_MODELS_DIR  # where the checkpoint, text encoder and VAE download to
    vae_on_cpu: bool = False  # the VAE encodes and decodes in CPU memory (fp32): a smaller GPU peak

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 1:
            raise EngineError(
                f"the attention window must be 1 latent frame or more, got {self.window}"
            )
        if self.context is not None and self.context < 0:
            raise EngineError(f"the long-clip context must be 0 frames or more, got {self.context}")


def assemble(flow, codec, text, options: LargeOptions, name: str = "STARFlow-V 7B") -> Pipeline:
    """Put loaded parts together (also used by tests with tiny random parts)."""
    height, width = frame_size(
        options.aspect_ratio, side=options.side, multiple=codec.spatial_factor * flow.cfg.patch_size
    )
    train_latents = latent_frames(TRAIN_FRAMES)
    settings = PipelineSettings(
        train_latent_frames=train_latents,
        window=options.window,
        long_context=options.context,
        decode_context=True,
        context_noise=NOISE_STD,
        jacobi_block_size=options.jacobi_block_size,
        jacobi_max_iter=options.jacobi_max_iter,
        jacobi_threshold=options.jacobi_threshold,
        v2v_segment=TRAIN_FRAMES // 2 + 1,
    )
    info = model_info(
        name, flow, width, height, FPS, TRAIN_FRAMES, settings.temperature, codec.temporal_factor
    )
    info = replace(info, guidance=GUIDANCE)
    template = PromptTemplate(fps=FPS, noise_std=NOISE_STD, aspect_ratio=options.aspect_ratio)
    return Pipeline(flow, codec, text, info, settings, prompt_format=template)


def is_checkpoint(model: str | Path) -> bool:
    """A released-model checkpoint: a Hub repo id, or a .pth / .safetensors file that is not a
    demo bundle's weights (no JSON description beside it)."""
    path = Path(model)
    if path.suffix in (".pth", ".safetensors"):
        description = path.with_suffix(".json")
        return not description.exists() or is_config_json(description)
    return is_repo_id(model)


def resolve_checkpoint(
    model: str | Path,
    accept_license: bool = False,
    models_dir: Path = DEFAULT_MODELS_DIR,
    progress=None,
) -> Path:
    """A local .pth/.safetensors path, or a Hub repo id ("apple/starflow[@revision]")."""
    path = Path(model).expanduser()
    if path.exists():
        return ModelManager(models_dir).use_local(path)
    if is_repo_id(model):
        repo, _, revision = str(model).partition("@")
        manager = ModelManager(models_dir, HubSource(repo_id=repo, revision=revision or "main"))
        return manager.fetch(accept_license=accept_license, progress=progress)
    raise EngineError(f"model not found: {model}")


def load_large_pipeline(
    model: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    options: LargeOptions = LargeOptions(),
    accept_license: bool = False,
) -> Pipeline:
    """A STARFlow-V checkpoint of the configuration `options.config`, else of the .yaml/.yml/.json
    beside it, else the 7B's; every tensor name and shape is checked against that configuration
    and the frame size follows its img_size."""
    require_large()  # a missing package says so before anything heavy loads
    spec = config_for(model, options.config)
    cfg = spec.flow
    path = Path(model).expanduser()
    if not path.exists() and not is_repo_id(model):
        raise EngineError(f"model not found: {model}")
    if path.suffix == ".safetensors" and path.exists():
        _check_header(path, spec)  # a damaged or misshapen file says so first (its header only)
    text_path, vae_path = locate_parts(  # a missing part says so before the flow loads
        options.text_encoder or spec.text_encoder,
        options.vae or spec.vae,
        options.models_dir,
        download=accept_license,
    )
    local = _local_checkpoint(model, spec)  # a local checkpoint is checked against the config
    checkpoint = local or resolve_checkpoint(model, accept_license, options.models_dir)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    if options.window:
        cfg = cfg.replace(local_attn_window=options.window)
    build_on = "cpu" if options.offload else dev
    flow = build_model(cfg, checkpoint, build_on, dt)
    if options.offload:
        enable_offload(flow, dev)
    text = T5TextEncoder.from_pretrained(
        text_path,
        device=dev,
        dtype=dt,
        offload_after_use=dev.type == "cuda",
        max_tokens=cfg.txt_size,
    )
    if text.dim != cfg.txt_dim:
        raise EngineError(
            f"the text encoder gives {text.dim}-wide embeddings; the model's txt_dim is {cfg.txt_dim}"
        )
    vae_dev, vae_dt = ("cpu", torch.float32) if options.vae_on_cpu else (dev, dt)
    codec = WanCodec.from_pretrained(
        vae_path, device=vae_dev, dtype=vae_dt, temporal_scale=spec.vae_temporal_scale
    )
    log.info(
        "%s ready on %s (%s, offload=%s, window=%s, VAE on %s)",
        spec.name,
        dev,
        dt,
        options.offload,
        options.window,
        vae_dev,
    )
    return assemble(flow, codec, text, replace(options, side=spec.side), spec.name)


def _local_checkpoint(model: str | Path, spec: ModelSpec) -> Path | None:
    """A local .safetensors checked against the configuration's tensors, or a .pth checked and
    converted once; None for a Hub id (the download is checked against the 7B's manifest)."""
    path = Path(model).expanduser()
    if not path.exists():
        return None
    if path.suffix not in (".safetensors", ".pth", ".pt", ".bin"):
        raise EngineError(f"unsupported model file type {path.suffix!r} (use .safetensors or .pth)")
    manifest = _check_header(path, spec)
    return path if path.suffix == ".safetensors" else convert_once(path, manifest)


def _check_header(path: Path, spec: ModelSpec) -> dict:
    """Every tensor name and shape of `path` against the configuration's; its manifest."""
    manifest = expected_manifest(spec.flow)
    report = compare_shapes(tensor_shapes(path), manifest)
    if not report.ok:
        raise EngineError(f"{path.name} does not match {spec.name}'s config: {report.describe()}")
    return manifest
