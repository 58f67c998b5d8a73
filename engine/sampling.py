"""Sampling STARFlow-V frame by frame: token-by-token or block-wise Jacobi inversion of each flow
block, classifier-free guidance in the top block, context prefill, sliding attention window, and
the learnable denoiser applied in the reference's chunk schedule as frames become final."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .model import StarFlow
from .model.flow_block import FlowBlock, guided, permute
from .model.layers import KVCache
from .offload import resident


@dataclass(frozen=True)
class SamplerOptions:
    """guidance: CFG weight (top block only; 0 = off). jacobi=False samples token by token.
    window: top-block attention window in latent frames (None: the model's, else unlimited);
    context: frames re-encoded when the window slides (None: window - 1, as the reference)."""

    guidance: float = 0.0
    jacobi: bool = True
    block_size: int = 32
    max_iter: int = 32
    threshold: float = 1e-3
    window: int | None = None
    context: int | None = None


def invert_frame(
    block: FlowBlock,
    z: torch.Tensor,
    cache: KVCache,
    rope,
    last: torch.Tensor,
    init: torch.Tensor,
    chunk: int,
    opts: SamplerOptions,
    guidance: float,
    check: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Invert `block` for one frame's tokens z (B, n, C) in block order, continuing after `last`.

    Chunks of `chunk` tokens are solved by Jacobi iteration (a chunk of one token is exact in one
    step: the sequential sampler); each chunk's keys/values are committed to the cache once it
    has converged. `check` runs before each chunk (it raises to cancel). Returns x (B, n, C) float32.
    """
    x = init.float().clone()
    n = z.size(1)
    for s in range(0, n, chunk):
        if check is not None:
            check()
        e = min(s + chunk, n)
        before = last if s == 0 else x[:, s - 1 : s]
        for i in range(opts.max_iter):
            scale, shift = block.step(torch.cat([before, x[:, s : e - 1]], dim=1), cache, rope)
            if guidance > 0:
                scale, shift = guided(scale, shift, guidance)
            new = shift + scale * z[:, s:e]
            exact = i + 1 >= e - s  # after k sweeps the first k tokens (and their inputs) are exact
            done = exact or i == opts.max_iter - 1
            if not done:
                done = bool((((new - x[:, s:e]) ** 2).mean() / (new**2).mean()) < opts.threshold)
            x[:, s:e] = new
            if done:
                cache.commit(e - s)
                break
    return x


class TopSampler:
    """The deep causal block: text and context in its KV cache, one new frame per call."""

    def __init__(
        self,
        model: StarFlow,
        y: torch.Tensor,
        hw: tuple[int, int],
        opts: SamplerOptions,
        max_frames: int,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.block, self.opts, self.y, self.check = model.top, opts, y, check
        self.guidance = opts.guidance
        if self.block.order == "flip" and max_frames > 1:
            raise ValueError(
                "a model whose top block is not temporally causal cannot stream frames"
            )
        self.window = opts.window or model.cfg.local_attn_window
        frames = self.window or max_frames
        self.context = opts.context if opts.context is not None else (self.window or 1) - 1
        if self.window and not 0 <= self.context < self.window:
            raise ValueError(f"context {self.context} must be below the window {self.window}")
        dtype = self.block.proj_in.weight.dtype
        device = self.block.proj_in.weight.device
        self.rope = self.block.rope(*hw, frames, y.size(1), dtype, device)
        self.cache = self.block.new_cache(
            y.size(0), y.size(1) + frames * hw[0] * hw[1], device, dtype
        )
        self.history: deque[torch.Tensor] = deque(maxlen=max(self.context, 1))
        self.prev: torch.Tensor | None = None
        self.frames_done = 0
        self._start_window([])

    def _start_window(self, context: list[torch.Tensor]) -> None:
        self.cache.reset()
        self.block.prefill_text(self.y, self.cache, self.rope)
        self.last = self.block.sos_embed.expand(self.y.size(0), -1, -1).float()
        self.in_window = 0
        for tokens in context:
            self._append(tokens)

    def _append(self, tokens: torch.Tensor) -> None:
        self.block.step(torch.cat([self.last, tokens[:, :-1]], dim=1), self.cache, self.rope)
        self.cache.commit(tokens.size(1))
        self.last = tokens[:, -1:]
        self.in_window += 1

    def _slide_if_full(self) -> None:
        if self.window and self.in_window >= self.window:
            self._start_window(
                list(self.history)[len(self.history) - self.context :] if self.context else []
            )

    def _to_block(self, frame: torch.Tensor) -> torch.Tensor:
        """(B, h, w, C) natural order -> (B', h*w, C) block order, duplicated for guidance."""
        tokens = permute(frame.flatten(1, 2).float(), self.block.order, 1)
        return torch.cat([tokens, tokens]) if self.guidance > 0 else tokens

    def _record(self, tokens: torch.Tensor) -> None:
        self.history.append(tokens)
        self.prev = tokens
        self.frames_done += 1

    def prefill(self, frame: torch.Tensor) -> None:
        """A known frame (B, h, w, C), patchified and through the shallow blocks."""
        self._slide_if_full()
        tokens = self._to_block(frame)
        self._append(tokens)
        self._record(tokens)

    def next(self, noise: torch.Tensor) -> torch.Tensor:
        """Noise (B, h, w, C) -> the top block's input tokens for the next frame, same layout."""
        self._slide_if_full()
        z = self._to_block(noise)
        opts = self.opts
        chunk = 1 if not opts.jacobi else opts.block_size * (1 if self.frames_done == 0 else 4)
        init = self.prev if self.prev is not None else z
        x = invert_frame(
            self.block,
            z,
            self.cache,
            self.rope,
            self.last,
            init,
            chunk,
            opts,
            self.guidance,
            self.check,
        )
        self.last = x[:, -1:]
        self.in_window += 1
        self._record(x)
        b = noise.size(0)
        return permute(x[:b], self.block.order, 1).reshape(noise.shape)


def shallow_reverse(model: StarFlow, frame: torch.Tensor, opts: SamplerOptions) -> torch.Tensor:
    """Invert the shallow blocks (top-1 down to 0) for one frame (B, h, w, C) of each sample."""
    b, h, w, c = frame.shape
    x = frame.reshape(b, h * w, c).float()
    for block in reversed(model.shallow):
        with resident(model, block):
            dtype, device = block.proj_in.weight.dtype, block.proj_in.weight.device
            rope = block.rope(h, w, 1, 0, dtype, device)
            cache = block.new_cache(b, h * w, device, dtype)
            z = permute(x.to(device), block.order, 1)
            last = block.sos_embed.expand(b, -1, -1).float()
            chunk = opts.block_size if opts.jacobi else 1
            x = permute(
                invert_frame(block, z, cache, rope, last, z, chunk, opts, 0.0), block.order, 1
            )
    return x.reshape(b, h, w, c)


class FlowSampler:
    """Streams latent frames (before denoising) of one batch of prompts.

    y: text (B, L, D) for the prompts; y_null: the null prompt (B, L, D) when guidance is on.
    """

    def __init__(
        self,
        model: StarFlow,
        y: torch.Tensor,
        y_null: torch.Tensor | None,
        latent_hw: tuple[int, int],
        opts: SamplerOptions,
        max_frames: int,
        check: Callable[[], None] | None = None,
    ) -> None:
        if opts.guidance > 0 and y_null is None:
            raise ValueError("classifier-free guidance needs the null prompt")
        self.model, self.opts = model, opts
        p = model.cfg.patch_size
        self.hw = (latent_hw[0] // p, latent_hw[1] // p)
        y_top = torch.cat([y, y_null]) if opts.guidance > 0 else y
        self.top = TopSampler(model, y_top, self.hw, opts, max_frames, check)

    @torch.no_grad()
    def prefill(self, latents: torch.Tensor) -> None:
        """Known latent frames (B, T, C, H, W) become context for what follows."""
        h, _, _ = self.model.shallow_forward(self.model.patchify(latents))
        h = h.to(self.model.top.proj_in.weight.device)
        for t in range(h.size(1)):
            self.top.prefill(h[:, t])

    @torch.no_grad()
    def next_frame(self, noise: torch.Tensor) -> torch.Tensor:
        """Noise (B, C, H, W) -> the next latent frame (B, C, H, W), float32."""
        z = self.model.patchify(noise[:, None].float())[:, 0]
        x = shallow_reverse(self.model, self.top.next(z), self.opts)
        return self.model.unpatchify(x[:, None])[:, 0]


@torch.no_grad()
def sample(
    model: StarFlow,
    noise: torch.Tensor,
    y: torch.Tensor,
    y_null: torch.Tensor | None = None,
    opts: SamplerOptions = SamplerOptions(),
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """Whole-clip sampling: noise (B, T, C, H, W) -> latents (B, T, C, H, W), not denoised.

    With `context` (B, T0, C, H, W) the first T0 output frames are the context and sampling
    continues after it (noise frames 0..T0-1 are unused), as the reference's image-to-video.
    """
    sampler = FlowSampler(model, y, y_null, noise.shape[-2:], opts, noise.size(1))
    frames = []
    if context is not None:
        sampler.prefill(context)
        frames = list(context.float().unbind(1))
    for t in range(len(frames), noise.size(1)):
        frames.append(sampler.next_frame(noise[:, t]))
    return torch.stack(frames, dim=1)
