"""The released STARFlow-V 7B as a Pipeline: flan-t5-xl text, Wan2.2 VAE, one GPU.

    pipeline = load_large_pipeline("apple/starflow", accept_license=True, offload=True)

Memory plan (no torch.distributed): the flow and its KV cache in bf16; the text encoder visits
the GPU only while encoding; the VAE decodes one latent frame at a time (streaming); `offload`
keeps the shallow blocks and the denoiser in CPU memory between uses; `window` shortens the
deep block's attention window (latent frames) for 24 GB cards.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..api import EngineError
from ..checkpoint import build_model
from ..config import FlowConfig
from ..device import pick_device, pick_dtype
from ..offload import enable_offload
from ..pipeline import Pipeline, PipelineSettings, model_info
from .hub import MANIFEST_PATH, HubSource, ModelManager
from .sizes import FPS, TRAIN_FRAMES, frame_size, latent_frames
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
    text_encoder: str = "google/flan-t5-xl"
    vae: str = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    jacobi_block_size: int = 64  # the reference sample.py's defaults
    jacobi_max_iter: int = 32
    jacobi_threshold: float = 0.005


def assemble(flow, codec, text, options: LargeOptions, name: str = "STARFlow-V 7B") -> Pipeline:
    """Put loaded parts together (also used by tests with tiny random parts)."""
    height, width = frame_size(
        options.aspect_ratio, side=options.side, multiple=codec.spatial_factor * flow.cfg.patch_size
    )
    train_latents = latent_frames(TRAIN_FRAMES)
    settings = PipelineSettings(
        train_latent_frames=options.window or train_latents,
        context_noise=NOISE_STD,
        jacobi_block_size=options.jacobi_block_size,
        jacobi_max_iter=options.jacobi_max_iter,
        jacobi_threshold=options.jacobi_threshold,
        v2v_segment=TRAIN_FRAMES // 2 + 1,
    )
    info = model_info(name, flow, width, height, FPS, TRAIN_FRAMES, settings.temperature)
    template = PromptTemplate(fps=FPS, noise_std=NOISE_STD, aspect_ratio=options.aspect_ratio)
    return Pipeline(flow, codec, text, info, settings, prompt_format=template)


def is_hub_id(model: str | Path) -> bool:
    """ "owner/name[@revision]" naming no local file: a Hugging Face repo."""
    text = str(model)
    return text.count("/") == 1 and not Path(text).expanduser().exists() and not Path(text).suffix


def is_checkpoint(model: str | Path) -> bool:
    """A released-model checkpoint: a Hub repo id, or a .pth / .safetensors file that is not a
    demo bundle's weights (no JSON description beside it)."""
    path = Path(model)
    if path.suffix in (".pth", ".safetensors"):
        return not path.with_suffix(".json").exists()
    return is_hub_id(model)


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
    if is_hub_id(model):
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
    checkpoint = resolve_checkpoint(model, accept_license)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    cfg = FlowConfig.from_dict(json.loads(MANIFEST_PATH.read_text())["config"])
    if options.window:
        cfg = cfg.replace(local_attn_window=options.window)
    build_on = "cpu" if options.offload else dev
    flow = build_model(cfg, checkpoint, build_on, dt)
    if options.offload:
        enable_offload(flow, dev)
    text = T5TextEncoder.from_pretrained(
        options.text_encoder, device=dev, dtype=dt, offload_after_use=dev.type == "cuda"
    )
    codec = WanCodec.from_pretrained(options.vae, device=dev, dtype=dt)
    log.info(
        "STARFlow-V ready on %s (%s, offload=%s, window=%s)",
        dev,
        dt,
        options.offload,
        options.window,
    )
    return assemble(flow, codec, text, options)
