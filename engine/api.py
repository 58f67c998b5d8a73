"""The engine's public, Qt-free contract: requests, frame events, codecs and text encoders.

The GUI and the command line talk to the engine only through these types:

    pipeline = load_pipeline()                       # engine.registry: built-in demo model
    request = GenerateRequest(prompt="a red circle moves left on a black background")
    for event in pipeline.generate(request, cancel=threading.Event()):
        event.frames                                 # (n, H, W, 3) uint8 RGB, new frames only

All arrays crossing this boundary are numpy, frames as (T, H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch

Mode = Literal["t2v", "i2v", "v2v", "extend"]
MODES: tuple[str, ...] = ("t2v", "i2v", "v2v", "extend")
TASK_PREFIX = {"t2v": "", "i2v": "", "v2v": "(v2v) ", "extend": "(extend) "}

_ids = itertools.count(1)
MAX_SEED = 2**62  # seeds (plus per-segment offsets) stay within torch's 64-bit generator seeds
MAX_GUIDANCE = 20.0  # guidance weights above this overflow the guided product to NaN long before
MAX_TEMPERATURE = 10.0  # noise scales above this only give saturated frames
MAX_PROMPT_CHARS = 2000  # the 7B reads at most 256 tokens, the demo 23 words


def valid_temperature(t: float) -> bool:
    """A usable sampling temperature: finite, positive and at most MAX_TEMPERATURE."""
    return math.isfinite(t) and 0 < t <= MAX_TEMPERATURE


def valid_guidance(w: float) -> bool:
    """A usable guidance weight: finite, from 0 (none) to MAX_GUIDANCE."""
    return math.isfinite(w) and 0 <= w <= MAX_GUIDANCE


class EngineError(RuntimeError):
    """A failure the user can act on (bad input, bad model file, out of memory)."""


class Cancelled(Exception):  # noqa: N818 - reads as an event, like StopIteration
    """Raised inside the engine when a request's cancel flag is set; frames already yielded stay valid."""


@dataclass(frozen=True)
class GenerateRequest:
    """One generation job, immutable once made (the GUI thread builds it, the engine runs it).

    prompt: the caption (t2v, i2v, extend) or the edit instruction (v2v), without task prefix.
    frames: video frames to produce (extend: new frames after the source; v2v: defaults to
        the source length when 0).
    image: (H, W, 3) uint8 RGB first frame for i2v, any size (resized/cropped by the engine).
    video: (T, H, W, 3) uint8 RGB source clip for v2v / extend.
    temperature: scale of the sampling noise (below 1: samples nearer the flow's mode); None:
        the model's own default (ModelInfo.temperature).
    """

    prompt: str
    mode: Mode = "t2v"
    frames: int = 17
    seed: int = 0
    guidance: float = 2.5
    temperature: float | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    video: np.ndarray | None = field(default=None, repr=False, compare=False)
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EngineError(f"unknown mode {self.mode!r}; expected one of {MODES}")
        if self.mode == "i2v" and self.image is None:
            raise EngineError("image-to-video needs a start image")
        if self.mode in ("v2v", "extend") and self.video is None:
            raise EngineError(f"{self.mode} needs a source clip")
        if self.frames < 0 or (self.frames == 0 and self.mode != "v2v"):
            raise EngineError(f"frames must be positive, got {self.frames}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise EngineError(f"seed must be an integer, got {self.seed!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise EngineError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed}")
        if self.temperature is not None and not valid_temperature(self.temperature):
            raise EngineError(
                f"temperature must be a positive number up to {MAX_TEMPERATURE:g}, "
                f"got {self.temperature}"
            )
        if not valid_guidance(self.guidance):
            raise EngineError(f"guidance must be from 0 to {MAX_GUIDANCE:g}, got {self.guidance}")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise EngineError(
                f"prompt too long: {len(self.prompt):,} characters (at most {MAX_PROMPT_CHARS:,})"
            )

    @property
    def text(self) -> str:
        """The string the text encoder sees: task prefix + prompt."""
        return TASK_PREFIX[self.mode] + self.prompt.strip()


@dataclass(frozen=True)
class FrameEvent:
    """New final frames of a running request. `frames` is (n, H, W, 3) uint8 RGB."""

    request_id: int
    start: int  # index in the output clip of frames[0]
    frames: np.ndarray = field(repr=False)
    done: int  # output frames final so far
    total: int  # output frames the request will produce


@dataclass(frozen=True)
class ModelInfo:
    name: str
    width: int
    height: int
    fps: int
    train_frames: int  # clip length seen in training (video frames)
    device: str
    dtype: str
    parameters: int
    temperature: float = 1.0  # default sampling temperature (a request's None means this)
    # what the user should know about this load (e.g. a precision the CPU only emulates)
    warnings: tuple[str, ...] = ()
    frame_step: int = 1  # a causal video codec makes clips of 1 + frame_step * n frames
    guidance: float = 2.5  # default classifier-free guidance weight for this model


class Codec(Protocol):
    """Frames <-> latents. Frames (B, T, 3, H, W) float in [-1, 1]; latents (B, t, C, h, w).

    t = (T - 1) // temporal_factor + 1, h = H // spatial_factor, w = W // spatial_factor.
    """

    channels: int
    spatial_factor: int
    temporal_factor: int

    def encode(self, frames: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def stream_decoder(self) -> StreamDecoder: ...


class StreamDecoder(Protocol):
    """Decodes latent frames one at a time, keeping its causal state between calls."""

    def push(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, C, h, w) -> the video frames it completes, (B, n, 3, H, W) in [-1, 1]."""
        ...


class TextEncoder(Protocol):
    """Strings -> token embeddings (B, L, dim) float, padding positions zeroed; mask (B, L) bool."""

    dim: int
    max_tokens: int

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...
