"""Pixels and prompts in, frames out: a loaded model with its codec and text encoder.

`engine.registry.load_pipeline()` gives one (the built-in Shapes-world demo model by default); the
GUI and the command line call `Pipeline.generate(request, cancel)` and receive `FrameEvent`s as
the causal generator finalises frames. Each model family builds a Pipeline (or a subclass) in its
own package: `engine.demo.bundle`, `engine.starflow_v.loader`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .api import (
    Cancelled,
    Codec,
    EngineError,
    FrameEvent,
    GenerateRequest,
    Mode,
    ModelInfo,
    TextEncoder,
    valid_temperature,
)
from .denoise import chunk_length
from .device import precision_warnings
from .frames import fit_frame
from .limits import check_request
from .model import StarFlow
from .sampling import SamplerOptions
from .session import NoiseSource, Session

log = logging.getLogger(__name__)

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
    window: int | None = None  # top-block attention window of longer clips (None: training length)
    long_context: int | None = None  # frames re-encoded as the window slides (None: window - 1)
    # i2v / extend: decode the denoised context with the clip (the reference's whole-clip
    # decode; i2v's frame 0 is then the decoded image), else prime the decoder with it as given
    decode_context: bool = False

    def __post_init__(self) -> None:
        if not valid_temperature(self.temperature):
            raise ValueError(
                f"sampling temperature must be finite and positive, got {self.temperature}"
            )


def to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, T, 3, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return (x.permute(0, 3, 1, 2).float() / 127.5 - 1.0)[None]


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(1, T, 3, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    x = ((frames[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def model_info(
    name: str,
    flow: StarFlow,
    width: int,
    height: int,
    fps: int,
    train_frames: int,
    temperature: float,
    frame_step: int = 1,
) -> ModelInfo:
    """What the editor and the command line show of a loaded model (device, dtype and size read
    from the flow's weights)."""
    weight = flow.top.proj_in.weight
    return ModelInfo(
        name=name,
        width=width,
        height=height,
        fps=fps,
        train_frames=train_frames,
        device=str(weight.device),
        dtype=str(weight.dtype).replace("torch.", ""),
        parameters=sum(p.numel() for p in flow.parameters()),
        temperature=temperature,
        warnings=precision_warnings(weight.device, weight.dtype),
        frame_step=frame_step,
    )


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

    def snap_frames(self, frames: int, mode: Mode = "t2v") -> int:
        """The frame count a request for `frames` makes: the nearest the codec can decode (ties: the
        longer). A per-frame codec makes any count; a causal video codec of temporal factor k makes
        1 + k*n frames of a clip (t2v, i2v) and k*n new frames after a source (extend); an edit
        (v2v) makes 1 + k*n frames too, rounded down so that it never outruns its source."""
        k = self.codec.temporal_factor
        if k == 1 or frames < 1:
            return frames
        if mode == "v2v":
            return 1 + k * ((frames - 1) // k)
        base = 0 if mode == "extend" else 1
        n = (2 * (frames - base) + k) // (2 * k)  # (frames - base) / k, halves up
        return base + k * max(n, 1 - base)

    @torch.no_grad()
    def encode(self, frames: np.ndarray, noise_seed: int) -> torch.Tensor:
        # a codec may live on another device (the 7B's VAE on the CPU): the flow's device after
        latents = self.codec.encode(to_tensor(frames, self.device)).float().to(self.device)
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

    # ---- generation ------------------------------------------------------------------------------
    def null_text(self, mode: str) -> str:
        """Guidance's unconditional text for a request of `mode` (the empty text)."""
        return ""

    def edit_carry(self) -> int:
        """Edited frames an edit segment after the first takes as context (0: none)."""
        return 0

    def temperature(self, request: GenerateRequest) -> float:
        """The sampling temperature a request runs at: its own, or the model's default."""
        if request.temperature is not None:
            return request.temperature
        return self.settings.temperature

    def options(self, guidance: float, total_latents: int) -> SamplerOptions:
        s = self.settings
        window = s.window or s.train_latent_frames
        window = window if total_latents > window else None
        context = None
        if window is not None and s.long_context is not None:
            context = min(s.long_context, window - 1)
        return SamplerOptions(
            guidance=guidance,
            jacobi=True,
            block_size=s.jacobi_block_size,
            max_iter=s.jacobi_max_iter,
            threshold=s.jacobi_threshold,
            window=window,
            context=context,
        )

    def denoise_steps(self, total_latents: int) -> int | None:
        """Latent frames per denoiser chunk (None: the whole clip at once): the training clip
        length, as the reference at its training window, whatever the sampler's window; always
        longer than the denoiser's overlap."""
        s = self.settings
        if total_latents <= s.train_latent_frames:
            return None
        return chunk_length(s.train_latent_frames, self.model.cfg.denoiser_window)

    def generate(
        self, request: GenerateRequest, cancel: threading.Event | None = None
    ) -> Iterator[FrameEvent]:
        """Run a request, yielding each batch of new final frames. Raises Cancelled / EngineError."""
        source = len(request.video) if request.video is not None else 0
        check_request(self, request.frames, source)  # frame count and memory, before allocating
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
        total = self.snap_frames(request.frames, request.mode)
        if total != request.frames:
            log.info("%d frames asked, %d made (the codec's lengths)", request.frames, total)
        if context is not None and self.settings.decode_context:
            yield from self._decode_with_context(request, y, y_null, context, total, cancel)
            return
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

    def _decode_with_context(
        self, request: GenerateRequest, y, y_null, context, total: int, cancel
    ) -> Iterator[FrameEvent]:
        """i2v / extend as the reference: the clip, context included, is denoised and decoded
        whole; i2v keeps the decoded start frame, extend drops its source's frames."""
        k = self.codec.temporal_factor
        shown = 1 if request.mode == "i2v" else 0  # output frames that come from the context
        n_lat = math.ceil((total - shown) / k)
        skip = (context.size(1) - 1) * k + 1 - shown  # decoded context frames not shown
        emitted = 0
        stream = self._stream(y, y_null, context, n_lat, request, cancel, decode_context=True)
        for frames in stream:
            frames, skip = frames[skip:], max(0, skip - len(frames))
            frames = frames[: total - emitted]
            if len(frames):
                yield FrameEvent(request.id, emitted, frames, emitted + len(frames), total)
                emitted += len(frames)

    def _edit(self, request: GenerateRequest, y, y_null, cancel) -> Iterator[FrameEvent]:
        """Video-to-video: the source in segments of `v2v_segment` frames, each segment the prefix
        of its edited frames (the layout the demo model was trained on); output frame t edits
        source frame t (modulo the source's length: a longer request loops the source).

        A segment after the first starts `edit_carry()` source frames early, and the edited frames
        already made of those come after its source frames as context (the training layout with
        its first edited frames given), so the edit goes on where the last segment left it. A
        segment cut short by the end of the source takes a whole segment's source frames, those
        before it too (one source frame alone edits badly); without carry it samples
        their edited frames again and drops them. Sampling stops at the request's last frame."""
        source = self.prepare_video(request.video)
        # a causal video codec decodes 1 + k*n frames: the source's last frames past that are
        # left out, so that output frame t edits source frame t on every pass
        source = source[: self.snap_frames(len(source), "v2v")]
        total = self.snap_frames(request.frames or len(source), "v2v")
        if request.frames and total != request.frames:
            log.info("%d frames asked, %d made (the codec's lengths)", request.frames, total)
        seg = self.settings.v2v_segment or len(source)
        # edited frames are latents one for one only with a per-frame codec
        carry = self.edit_carry() if self.codec.temporal_factor == 1 else 0
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
        self,
        y,
        y_null,
        context,
        n_lat: int,
        request: GenerateRequest,
        cancel,
        seed_offset: int = 0,
        decode_context: bool = False,
    ) -> Iterator[np.ndarray]:
        """Decoded frames (T, H, W, 3) uint8 of `n_lat` new latents after `context`, in batches;
        with `decode_context` the denoised context's frames come first, else the decoder is
        primed with the context as given."""
        n_ctx = 0 if context is None else context.size(1)
        opts = self.options(request.guidance, n_ctx + n_lat)
        session = Session(self.model, opts, denoise_steps=self.denoise_steps(n_ctx + n_lat))
        session.set_prompt(y, y_null)
        session.set_context(context)
        c, sf = self.codec.channels, self.codec.spatial_factor
        hw = (self.info.height // sf, self.info.width // sf)
        noise = NoiseSource(
            request.seed + seed_offset, (1, c, *hw), self.device, self.temperature(request)
        )
        decoder = self.codec.stream_decoder()
        with torch.no_grad():
            for t in range(0 if decode_context else n_ctx):  # warm a causal decoder's state
                decoder.push(context[:, t])
            for _, latent in session.frames(n_lat, noise, cancel, hw, decode_context):
                if not _finite(latent):  # black frames would be written otherwise
                    raise EngineError(
                        "the model produced NaN or infinite values: try a lower guidance or "
                        "temperature"
                    )
                yield to_uint8(decoder.push(latent))


def _finite(latent: torch.Tensor) -> bool:
    """No NaN or infinity in `latent` (a meta tensor, which has no values, passes)."""
    return latent.device.type == "meta" or bool(torch.isfinite(latent).all())
