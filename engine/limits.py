"""Limits checked before anything large is allocated, each refused with its number.

    check_frame_size(width, height, spatial_factor, "shapes.json")   # a model's frame size
    check_request(pipeline, frames=480, source_frames=0)             # before a request runs

A request's memory is estimated from below (the top block's key/value cache over its attention
window, a latent's decoded frames, a source clip and its float copy) and compared with what the
device has free: a request refused here could not have run; one let through may still run out.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .api import EngineError

log = logging.getLogger(__name__)

MAX_FRAMES = 100_000  # frames of one request (1 h 44 min at 16 fps)
MAX_SIDE = 8192  # pixels on a side of a model's frame
MAX_ASPECT = 100  # an image's longer side over its shorter side


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes free for a new allocation on `device` (None where it cannot be told)."""
    device = torch.device(device)
    if device.type == "meta":  # no memory behind it (engine.starflow_v.memory measures there)
        return None
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_frame_size(width: object, height: object, spatial_factor: int, where: str) -> None:
    """A model's frame size: whole pixels, 1..MAX_SIDE a side, multiples of the codec's factor."""
    for name, side in (("width", width), ("height", height)):
        if isinstance(side, bool) or not isinstance(side, int):
            raise EngineError(f"{where}: {name} must be a whole number of pixels, got {side!r}")
        if not 1 <= side <= MAX_SIDE:
            raise EngineError(f"{where}: {name} must be from 1 to {MAX_SIDE} pixels, got {side}")
        if side % spatial_factor:
            raise EngineError(
                f"{where}: {name} must be a multiple of the codec's {spatial_factor}, got {side}"
            )


def estimate_bytes(pipeline, frames: int, source_frames: int = 0) -> int:
    """A lower bound of the memory a request of `frames` new frames (after `source_frames` of
    source clip) holds at once on the pipeline's device."""
    info, cfg, codec = pipeline.info, pipeline.model.cfg, pipeline.codec
    sf, tf = codec.spatial_factor, codec.temporal_factor
    tokens = (info.height // sf) * (info.width // sf) // cfg.patch_size**2  # per latent frame
    latents = (max(frames, 1) - 1) // tf + 1 + (max(source_frames, 1) - 1) // tf + 1
    settings = pipeline.settings
    window = min(latents, settings.window or settings.train_latent_frames)
    width = cfg.top_block_channels or cfg.channels
    element = pipeline.model.top.proj_in.weight.element_size()
    # keys and values of the top block's layers, for the prompt and the window's frames, twice
    # over with guidance (conditional and unconditional rows)
    cache = 2 * cfg.layers_per_block[-1] * 2 * (cfg.txt_size + window * tokens) * width * element
    pixels = info.width * info.height * 3
    decoded = tf * pixels * 4 * 2  # a latent's decoded frames in float, and their uint8 copy
    source = source_frames * pixels * (1 + 4)  # the clip, and its float copy for encoding
    return cache + decoded + source


def check_memory(needed: int, device, what: str) -> None:
    """Refuse `what` where `needed` bytes exceed what the device has free."""
    free = available_memory(device)
    if free is not None and needed > free:
        raise EngineError(f"{what} needs at least {_gb(needed)} of memory; {_gb(free)} is free")


def check_request(pipeline, frames: int, source_frames: int = 0) -> None:
    """A request's frame count against MAX_FRAMES and its memory against the device's."""
    if frames > MAX_FRAMES:
        raise EngineError(f"frames: {frames} is more than one request makes (at most {MAX_FRAMES})")
    info = pipeline.info
    needed = estimate_bytes(pipeline, frames, source_frames)
    check_memory(needed, pipeline.device, f"{frames} frames at {info.width}x{info.height}")


def check_aspect(width: int, height: int, name: str) -> None:
    """An image whose sides differ more than MAX_ASPECT times is refused before decoding."""
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise EngineError(
            f"{name}: {width} x {height} is too narrow to use as a frame "
            f"(sides at most {MAX_ASPECT} to 1)"
        )
