"""Pixels and prompts in, frames out: a loaded model with its codec and text encoder.

`load_pipeline()` gives the built-in Shapes-world demo model (resources/models); the GUI and the
command line call `Pipeline.generate(request, cancel)` and receive `FrameEvent`s as the causal
generator finalises frames.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .api import (
    TASK_PREFIX,
    V2V_NULLS,
    Cancelled,
    Codec,
    EngineError,
    FrameEvent,
    GenerateRequest,
    ModelInfo,
    TextEncoder,
    valid_temperature,
)
from .denoise import denoise_clip
from .model import StarFlow
from .sampling import SamplerOptions
from .session import NoiseSource, Session, denoise_chunk

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "models"
DEMO_MODEL = RESOURCES / "shapes_demo.json"
MAX_SOURCE_FRAMES = 2048


@dataclass(frozen=True)
class PipelineSettings:
    """How a model is sampled: its training clip length bounds the attention window."""

    train_latent_frames: int
    context_noise: float = 0.0  # noise added to encoded context frames (the training augmentation)
    v2v_segment: int = 0  # source video frames per edit segment (0: whole source at once)
    extend_context: int = 0  # latent frames of the source used as context when extending
    jacobi_block_size: int = 32
    jacobi_max_iter: int = 32
    jacobi_threshold: float = 1e-3
    temperature: float = 1.0  # scale of the sampling noise (1: the flow's own distribution)
    # guided edits' unconditional text: "empty" (""), or "task" ("(v2v) ", the instruction
    # dropped), for a model trained with it (engine.train --drop-to-task): given the source
    # frames, the empty text predicts their continuation, not an edit of them
    v2v_null: str = "empty"
    # edited frames a segment after the first takes as context, after its source frames: the
    # last ones of the segment before, so that what an edit makes (an added object, a colour)
    # goes on from one segment to the next instead of being drawn anew in each (0: none)
    v2v_carry: int = 0

    def __post_init__(self) -> None:
        if not valid_temperature(self.temperature):
            raise ValueError(
                f"sampling temperature must be finite and positive, got {self.temperature}"
            )
        if self.v2v_null not in V2V_NULLS:
            raise ValueError(f"v2v_null must be one of {V2V_NULLS}, got {self.v2v_null!r}")
        if not 0 <= self.v2v_carry < max(self.v2v_segment, 1):
            raise ValueError(
                f"v2v_carry must be from 0 to v2v_segment - 1 ({self.v2v_segment - 1}), "
                f"got {self.v2v_carry}"
            )


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else "sees no GPU"
        raise EngineError(
            f"--device {device}: this torch ({torch.__version__}) {built}; use --device cpu"
        )
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {
            "fp32": torch.float32,
            "float32": torch.float32,
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
        }[dtype]
    except KeyError:
        raise EngineError(f"unknown precision {dtype!r} (use auto, fp32 or bf16)") from None


SLOW_PRECISION = 2.0  # a CPU precision this many times slower than float32 gets a warning
_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def precision_slowdown(
    device: torch.device, dtype: torch.dtype, side: int = 256, reps: int = 3
) -> float:
    """How many times longer a side x side matrix product takes in `dtype` than in float32 on
    `device` (best of `reps` after one warm-up each). CPUs without native bfloat16 (no AVX-512
    BF16 or AMX) emulate it: on an AVX2-only EPYC a bfloat16 product is ~90x slower."""
    a = torch.randn(side, side, device=device)
    b = torch.randn(side, side, device=device)

    def best(dt: torch.dtype) -> float:
        x, y = a.to(dt), b.to(dt)
        times = []
        for _ in range(reps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            (x @ y).float().sum().item()
            times.append(time.perf_counter() - t0)
        return min(times[1:])

    return best(dtype) / max(best(torch.float32), 1e-9)


def precision_warnings(
    device: torch.device, dtype: torch.dtype, limit: float | None = None
) -> tuple[str, ...]:
    """A warning when a reduced precision on a CPU is over `limit` (default SLOW_PRECISION) times
    slower than float32 (the CPU emulates it), naming the fast choice; nothing on GPUs or in
    float32."""
    if device.type != "cpu" or dtype == torch.float32:
        return ()
    factor = precision_slowdown(device, dtype)
    if factor <= (SLOW_PRECISION if limit is None else limit):
        return ()
    name = _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))
    text = (
        f"{name} matrix products take {factor:.0f}x as long as fp32 ones on this CPU (it has no "
        f"native {name}): precision auto or fp32 is the fast choice here"
    )
    log.warning("%s", text)
    return (text,)


def fit_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Any HWC uint8 RGB (or gray / RGBA) image -> (height, width, 3): resize to cover, centre crop."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
        raise EngineError(f"expected an 8-bit image, got dtype {img.dtype} shape {img.shape}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] != 3:
        raise EngineError(f"expected 3 colour channels, got {img.shape[2]}")
    h, w = img.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, math.ceil(w * scale - 1e-6)), max(height, math.ceil(h * scale - 1e-6))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(img[top : top + height, left : left + width])


def to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, T, 3, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return (x.permute(0, 3, 1, 2).float() / 127.5 - 1.0)[None]


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(1, T, 3, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    x = ((frames[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


class Pipeline:
    def __init__(
        self,
        model: StarFlow,
        codec: Codec,
        text: TextEncoder,
        info: ModelInfo,
        settings: PipelineSettings,
        prompt_format: Callable[[str], str] = lambda s: s,
    ) -> None:
        self.model, self.codec, self.text, self.info = model, codec, text, info
        self.settings, self.prompt_format = settings, prompt_format
        self.device = model.top.proj_in.weight.device

    # ---- inputs ----------------------------------------------------------------------------------
    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        """Any HWC uint8 RGB image -> the model's frame size (resize to cover + centre crop)."""
        return fit_frame(image, self.info.width, self.info.height)

    def prepare_video(self, video: np.ndarray) -> np.ndarray:
        video = np.asarray(video)
        if video.ndim != 4 or video.shape[0] < 1:
            raise EngineError(f"expected a clip of shape (T, H, W, 3), got {video.shape}")
        if video.shape[0] > MAX_SOURCE_FRAMES:
            raise EngineError(
                f"source clip too long ({video.shape[0]} frames, max {MAX_SOURCE_FRAMES})"
            )
        return np.stack([self.prepare_image(f) for f in video])

    def latent_count(self, frames: int) -> int:
        tf = self.codec.temporal_factor
        return (frames - 1) // tf + 1

    @torch.no_grad()
    def encode(self, frames: np.ndarray, noise_seed: int) -> torch.Tensor:
        latents = self.codec.encode(to_tensor(frames, self.device)).float()
        std = self.settings.context_noise
        if std > 0:
            g = torch.Generator().manual_seed(noise_seed + 7919)
            latents = latents + std * torch.randn(latents.shape, generator=g).to(latents.device)
        return latents

    @torch.no_grad()
    def embed(
        self, text: str, guidance: float, null: str = ""
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The text's embedding and, with guidance, the unconditional text's (`null`)."""
        texts = [self.prompt_format(text)] + ([self.prompt_format(null)] if guidance > 0 else [])
        emb, _ = self.text.encode(texts)
        emb = emb.to(self.device, self.model.top.proj_txt.weight.dtype)
        return emb[:1], (emb[1:] if guidance > 0 else None)

    @torch.no_grad()
    def through_chain(self, frames: np.ndarray, text: str, noise_seed: int = 0) -> np.ndarray:
        """Frames (T, H, W, 3) uint8 as generation would show them if the flow sampled exactly
        their latents: encoded, the training noise added (as for context), cleaned by the
        learnable denoiser under `text`, decoded. What is lost here is lost to every sample:
        the ceiling the codec and denoiser leave the flow (engine.eval's `chain` task)."""
        latents = self.encode(self.prepare_video(frames), noise_seed)
        latents = latents.to(self.model.top.proj_in.weight.dtype)
        if hasattr(self.model, "learnable_self_denoiser"):
            y, _ = self.embed(text, 0.0)
            steps = denoise_chunk(self.model, self.options(0.0, latents.size(1)))
            latents = denoise_clip(self.model, latents, y, steps, self.model.cfg.denoiser_window)
        return to_uint8(self.codec.decode(latents))

    # ---- generation ------------------------------------------------------------------------------
    def null_text(self, mode: str) -> str:
        """Guidance's unconditional text for a request of `mode`."""
        return TASK_PREFIX["v2v"] if mode == "v2v" and self.settings.v2v_null == "task" else ""

    def temperature(self, request: GenerateRequest) -> float:
        """The sampling temperature a request runs at: its own, or the model's default."""
        if request.temperature is not None:
            return request.temperature
        return self.settings.temperature

    def options(self, guidance: float, total_latents: int) -> SamplerOptions:
        s = self.settings
        window = s.train_latent_frames if total_latents > s.train_latent_frames else None
        return SamplerOptions(
            guidance=guidance,
            jacobi=True,
            block_size=s.jacobi_block_size,
            max_iter=s.jacobi_max_iter,
            threshold=s.jacobi_threshold,
            window=window,
        )

    def generate(
        self, request: GenerateRequest, cancel: threading.Event | None = None
    ) -> Iterator[FrameEvent]:
        """Run a request, yielding each batch of new final frames. Raises Cancelled / EngineError."""
        try:
            yield from self._generate(request, cancel)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise EngineError(
                "out of GPU memory: try fewer frames, a shorter window, or --offload"
            ) from exc

    def _generate(
        self, request: GenerateRequest, cancel: threading.Event | None
    ) -> Iterator[FrameEvent]:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        y, y_null = self.embed(request.text, request.guidance, self.null_text(request.mode))
        if request.mode == "v2v":
            yield from self._edit(request, y, y_null, cancel)
            return
        prefix, context = np.zeros((0, self.info.height, self.info.width, 3), np.uint8), None
        if request.mode == "i2v":
            prefix = self.prepare_image(request.image)[None]
            context = self.encode(prefix, request.seed)
        elif request.mode == "extend":
            source = self.prepare_video(request.video)
            keep = self.settings.extend_context or self.settings.train_latent_frames - 1
            keep = (keep - 1) * self.codec.temporal_factor + 1  # video frames of `keep` latents
            context = self.encode(source[-keep:], request.seed)
        total = request.frames
        new_frames = total - len(prefix)
        emitted = 0
        if len(prefix):
            yield FrameEvent(request.id, 0, prefix, len(prefix), total)
            emitted = len(prefix)
        if new_frames > 0:
            n_lat = math.ceil(new_frames / self.codec.temporal_factor)
            for frames in self._stream(y, y_null, context, n_lat, request, cancel):
                frames = frames[: total - emitted]
                if len(frames):
                    yield FrameEvent(request.id, emitted, frames, emitted + len(frames), total)
                    emitted += len(frames)

    def _edit(self, request: GenerateRequest, y, y_null, cancel) -> Iterator[FrameEvent]:
        """Video-to-video: the source in segments of `v2v_segment` frames, each segment the prefix
        of its edited frames (the layout the demo model was trained on); output frame t edits
        source frame t (modulo the source's length: a longer request loops the source).

        A segment after the first starts `v2v_carry` source frames early, and the edited frames
        already made of those come after its source frames as context (the training layout with
        its first edited frames given), so the edit goes on where the last segment left it. A
        segment cut short by the end of the source takes a whole segment's source frames, those
        before it too (one source frame alone edits badly: a demo model edited the last of 17
        frames right in 11% of 200 clips after one, 40% after eight); without carry it samples
        their edited frames again and drops them. Sampling stops at the request's last frame."""
        source = self.prepare_video(request.video)
        total = request.frames or len(source)
        seg = self.settings.v2v_segment or len(source)
        # edited frames are latents one for one only with a per-frame codec
        carry = self.settings.v2v_carry if self.codec.temporal_factor == 1 else 0
        made: list[np.ndarray] = []  # edited frames (H, W, 3) of the current pass over the source
        start = emitted = 0  # start: the output frame the segment's new frames begin at
        while start < total:
            offset = start % len(source)
            if offset == 0:
                made = []
            begin = max(0, min(offset - carry, len(source) - seg))
            end = min(begin + seg, len(source))
            known = offset - begin if carry else 0  # made[begin:offset]: this pass made them
            skip = offset - begin - known  # edited frames sampled again and dropped
            context = self.encode(source[begin:end], request.seed + start)
            if known:
                given = np.stack(made[begin:offset])
                context = torch.cat([context, self.encode(given, request.seed + start + 1)], 1)
            n_lat = self.latent_count(end - begin) - known
            for frames in self._stream(
                y, y_null, context, n_lat, request, cancel, seed_offset=start
            ):
                frames, skip = frames[skip:], max(0, skip - len(frames))
                frames = frames[: total - emitted]
                if len(frames):
                    made.extend(frames)
                    yield FrameEvent(request.id, emitted, frames, emitted + len(frames), total)
                    emitted += len(frames)
                if emitted == total:
                    return
            start += end - offset

    def _stream(
        self, y, y_null, context, n_lat: int, request: GenerateRequest, cancel, seed_offset: int = 0
    ) -> Iterator[np.ndarray]:
        n_ctx = 0 if context is None else context.size(1)
        session = Session(self.model, self.options(request.guidance, n_ctx + n_lat))
        session.set_prompt(y, y_null)
        session.set_context(context)
        c, sf = self.codec.channels, self.codec.spatial_factor
        hw = (self.info.height // sf, self.info.width // sf)
        noise = NoiseSource(
            request.seed + seed_offset, (1, c, *hw), self.device, self.temperature(request)
        )
        decoder = self.codec.stream_decoder()
        with torch.no_grad():
            for t in range(n_ctx):  # warm a causal decoder's state with the context
                decoder.push(context[:, t])
            for _, latent in session.frames(n_lat, noise, cancel, hw):
                yield to_uint8(decoder.push(latent))


def load_pipeline(
    model: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    accept_license: bool = False,
    **large_options,
) -> Pipeline:
    """Load a model: None = the built-in demo model; a bundle JSON; or the released STARFlow-V as
    a .pth/.safetensors checkpoint or a Hub repo id (large_options: engine.large.pipeline.LargeOptions)."""
    path = Path(model) if model is not None else DEMO_MODEL
    if (path.suffix in (".pth", ".safetensors") and not path.with_suffix(".json").exists()) or (
        str(model).count("/") == 1 and not path.exists() and not path.suffix
    ):
        from .large.pipeline import LargeOptions, load_large_pipeline

        options = LargeOptions(**{k: v for k, v in large_options.items() if v is not None})
        return load_large_pipeline(model, device, dtype, options, accept_license)
    return load_bundle(path.with_suffix(".json"), device, dtype)


def _companions(meta: dict, json_path: Path, weights: Path):
    """The codec and text encoder a bundle names: the PCA/word pair of the first demo model, or the
    learned autoencoder/transformer pair of engine.demo."""
    if meta.get("codec", {}).get("kind") == "pca":
        from safetensors.torch import load_file

        from .demo.pca import PCACodec, WordText

        codec = PCACodec(int(meta["codec"]["components"]))
        text = WordText(int(meta["text"]["dim"]), int(meta["text"]["max_tokens"]))
        try:
            state = load_file(str(weights))
            codec.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("codec.")})
            text.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")})
        except Exception as exc:
            raise EngineError(f"cannot load the demo codec/text weights: {exc}") from exc
        return codec, text
    from .demo import load_demo_components

    return load_demo_components(json_path, weights)


def sampling_settings(meta: dict) -> PipelineSettings:
    """A bundle JSON's sampling settings; ValueError / TypeError where they are bad."""
    return PipelineSettings(
        train_latent_frames=meta.get("train_frames", 17), **meta.get("sampling", {})
    )


def load_bundle(json_path: Path, device: str = "auto", dtype: str = "auto") -> Pipeline:
    from .checkpoint import build_model, open_state_dict
    from .config import FlowConfig

    if not json_path.is_file():
        raise EngineError(f"model description not found: {json_path}")
    try:
        meta = json.loads(json_path.read_text())
        cfg = FlowConfig.from_dict(meta["flow"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{json_path.name} is not a valid model description: {exc}") from exc
    try:
        settings = sampling_settings(meta)
    except (ValueError, TypeError) as exc:
        raise EngineError(f"{json_path.name} has bad sampling settings: {exc}") from exc
    weights = json_path.with_suffix(".safetensors")
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    state = open_state_dict(weights)
    flow = build_model(cfg, state, dev, dt, prefix="flow.")
    codec, text = _companions(meta, json_path, weights)
    codec = codec.to(dev).eval()
    text = text.to(dev).eval()
    info = ModelInfo(
        name=meta.get("name", json_path.stem),
        width=meta["width"],
        height=meta["height"],
        fps=meta.get("fps", 16),
        train_frames=meta.get("train_frames", 17),
        device=str(dev),
        dtype=str(dt).replace("torch.", ""),
        parameters=sum(p.numel() for p in flow.parameters()),
        temperature=settings.temperature,
        warnings=precision_warnings(dev, dt),
    )
    log.info("loaded %s (%d parameters) on %s", info.name, info.parameters, dev)
    return Pipeline(flow, codec, text, info, settings)
