"""A streaming generation session over latents (the engine's SamPredictor-style core).

    session = Session(model, SamplerOptions(guidance=2.5))
    session.set_prompt(y, y_null)            # text embeddings, once
    session.set_context(latents)             # optional: start frame / source clip, once
    for index, latent in session.frames(17, noise=NoiseSource(seed=1)):
        ...                                  # each latent frame as soon as it is final

Calls out of order raise. Cancellation is checked between frames and between Jacobi chunks;
frames already yielded stay valid.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import torch

from .api import Cancelled, valid_temperature
from .denoise import DenoiseStream, chunk_length
from .model import StarFlow
from .sampling import FlowSampler, SamplerOptions


class NoiseSource:
    """Per-frame Gaussian noise from a seed: frame t's noise does not depend on the clip length.
    `temperature` scales it (below 1: samples nearer the flow's mode, as for other flows)."""

    def __init__(
        self,
        seed: int,
        shape: tuple[int, ...],
        device: torch.device | str = "cpu",
        temperature: float = 1.0,
    ) -> None:
        if not valid_temperature(temperature):
            raise ValueError(f"sampling temperature must be finite and positive, got {temperature}")
        self.generator = torch.Generator().manual_seed(int(seed))
        self.shape, self.device, self.temperature = shape, device, float(temperature)

    def next(self) -> torch.Tensor:
        return (torch.randn(self.shape, generator=self.generator) * self.temperature).to(
            self.device
        )


def denoise_chunk(model: StarFlow, opts: SamplerOptions) -> int | None:
    """Latent frames per denoiser chunk when sampling with `opts`: the attention window (None:
    the whole clip at once)."""
    return opts.window or model.cfg.local_attn_window


class Session:
    def __init__(
        self,
        model: StarFlow,
        opts: SamplerOptions,
        denoise: bool = True,
        denoise_steps: int | None = None,
    ) -> None:
        self.model, self.opts = model, opts
        self.denoise = denoise and hasattr(model, "learnable_self_denoiser")
        self.denoise_steps = denoise_steps
        self.y: torch.Tensor | None = None
        self.y_null: torch.Tensor | None = None
        self.context: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.model.top.proj_in.weight.device

    def set_prompt(self, y: torch.Tensor, y_null: torch.Tensor | None = None) -> None:
        """Text embeddings (B, L, D) of the prompts and, for guidance, of the null prompt."""
        if self.opts.guidance > 0 and y_null is None:
            raise ValueError("guidance is on: set_prompt needs the null prompt's embedding")
        self.y, self.y_null = y.to(self.device), None if y_null is None else y_null.to(self.device)

    def set_context(self, latents: torch.Tensor | None) -> None:
        """Known latent frames (B, T0, C, H, W) that generation continues after (or None)."""
        if self.y is None:
            raise RuntimeError("call set_prompt before set_context")
        self.context = None if latents is None else latents.to(self.device, torch.float32)

    def frames(
        self,
        count: int,
        noise: NoiseSource,
        cancel: threading.Event | None = None,
        latent_hw: tuple[int, int] | None = None,
        with_context: bool = False,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (index, latent (B, C, H, W) float32) for `count` new frames; index 0 is the first
        frame after the context. `with_context` yields the context's frames first (indices -T0..-1,
        denoised as part of the clip). Raises `Cancelled` when `cancel` is set."""
        if self.y is None:
            raise RuntimeError("call set_prompt before frames")

        def check() -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled()

        n_ctx = 0 if self.context is None else self.context.size(1)
        hw = latent_hw or (tuple(self.context.shape[-2:]) if self.context is not None else None)
        if hw is None:
            raise ValueError("latent_hw is required without a context")
        sampler = FlowSampler(self.model, self.y, self.y_null, hw, self.opts, n_ctx + count, check)
        stream = None
        if self.denoise:
            overlap = self.model.cfg.denoiser_window
            steps = chunk_length(
                self.denoise_steps or denoise_chunk(self.model, self.opts), overlap
            )
            stream = DenoiseStream(self.model, self.y, n_ctx + count, steps, overlap)
        if self.context is not None:
            sampler.prefill(self.context)
            for t in range(n_ctx):
                finals = (
                    [(t, self.context[:, t])] if stream is None else stream.push(self.context[:, t])
                )
                for index, frame in finals:
                    if with_context:
                        yield index - n_ctx, frame
        for _ in range(count):
            check()
            with torch.no_grad():
                latent = sampler.next_frame(noise.next())
            if stream is None:
                yield sampler.top.frames_done - 1 - n_ctx, latent
                continue
            for index, den in stream.push(latent):
                if index >= n_ctx or with_context:
                    yield index - n_ctx, den
