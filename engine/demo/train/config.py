"""Training settings, and what both stages use: the learning-rate schedule and frames as tensors."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.demo.data import to_unit
from engine.device import SLOW_PRECISION, precision_slowdown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 6000
    seed: int = 0
    batch: int = 8
    lr: float = 5e-4
    min_lr: float = 2e-5
    warmup: int = 200
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    denoiser_lr: float = 3e-4
    noise_std: float = 0.3  # latent noise augmentation, normalised latent units
    drop_text: float = 0.1  # caption dropping for classifier-free guidance
    drop_to_task: float = 0.0  # chance a dropped "(v2v) ..."/"(extend) ..." text keeps its prefix
    two_objects: float | None = None  # chance a training scene has two objects (None: the world's)
    codec_steps: int = 1000
    codec_batch: int = 32
    codec_lr: float = 2e-3
    codec_noise: float = 0.1  # the decoder sees latents + U(0, codec_noise) * N(0, 1)
    codec_eval_frames: int = 2048  # frames for the latent statistics (a quarter: held-out PSNR)
    codec_object_weight: float = 0.0  # the decoder's loss counts pixels near objects 1 + this
    autocast: str = "none"  # "bf16": flow forward and backward under bfloat16 autocast
    ema: float = 0.0  # > 0: the bundle holds this exponential moving average of the weights


def check_autocast(
    train_cfg: TrainConfig, device: torch.device, limit: float = SLOW_PRECISION
) -> float | None:
    """With --autocast bf16, warn (with the measured factor) when this device's bfloat16 products
    are over `limit` times slower than float32 ones, so a run is not left crawling for hours.
    Returns the factor, None without bf16."""
    if train_cfg.autocast != "bf16":
        return None
    factor = precision_slowdown(device, torch.bfloat16)
    if factor > limit:
        log.warning(
            "--autocast bf16: a matrix product takes %.1fx as long in bfloat16 as in float32 on "
            "this %s (no native bfloat16): training will be slower, not faster; "
            "--autocast none is the fast choice here",
            factor,
            device.type.upper(),
        )
    return factor


def lr_at(step: int, total: int, peak: float, floor: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to `floor` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min((step - warmup) / max(1, total - warmup), 1.0)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * t))


def frames_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1] on `device`."""
    return torch.from_numpy(to_unit(frames)).to(device)
