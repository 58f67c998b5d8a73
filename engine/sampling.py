"""Sampling STARFlow-V frame by frame: token-by-token or block-wise Jacobi inversion of each flow
block, classifier-free guidance in the top block, context prefill, sliding attention window, and
the learnable denoiser applied in the reference's chunk schedule as frames become final."""

from __future__ import annotations

import copy
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .model import StarFlow
from .model.flow_block import FlowBlock, guided, permute
from .model.layers import KVCache
from .offload import resident

SHALLOW_THRESHOLD = 0.3  # the shallow blocks' stopping threshold, relative to the top block's
GROWTH = 4  # a frame's Jacobi chunks grow to at most this many times the given size


@dataclass(frozen=True)
class SamplerOptions:
    """guidance: CFG weight (top block only; 0 = off). jacobi=False samples token by token.
    window: top-block attention window in latent frames (None: the model's, else unlimited);
    context: frames re-encoded when the window slides (None: window - 1, as the reference).
    block_size: the top block's Jacobi chunk for the first frame; later frames and the shallow
    blocks take 4x (the shallow blocks stop at SHALLOW_THRESHOLD x threshold).
    draft: a float32 top block makes its early Jacobi sweeps with a bfloat16 copy where the
    device multiplies bfloat16 fast; the stopping sweeps are always the model's own. Off by
    default: the answer would then depend on the machine (a seed gives other frames elsewhere).
    grow: a chunk that converged fast doubles the next (see `invert_frame`); False keeps every
    chunk at its given size."""

    guidance: float = 0.0
    jacobi: bool = True
    block_size: int = 32
    max_iter: int = 32
    threshold: float = 1e-3
    window: int | None = None
    context: int | None = None
    draft: bool = False
    grow: bool = True


@dataclass(frozen=True)
class Draft:
    """A low-precision copy of a block and its rotary table, for the early Jacobi sweeps."""

    block: FlowBlock
    rope: tuple[torch.Tensor, torch.Tensor]


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
    draft: Draft | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert `block` for one frame's tokens z (B, n, C) in block order, continuing after `last`.

    Chunks of `chunk` tokens are solved by Jacobi iteration from `init` (a chunk of one token is
    exact in one step: the sequential sampler). A chunk that converged within a quarter of its
    length in sweeps doubles the next one, up to GROWTH x `chunk`: fewer, fuller passes where the
    iteration contracts fast, the given size where it does not. `check` runs before each chunk
    (it raises to cancel). Returns x (B, n, C) float32 and the last scale and shift predicted for
    each token, stacked (2, B, n, C).
    """
    x = init.float().clone()
    affine = torch.empty(2, *z.shape, device=z.device)
    n, s, size = z.size(1), 0, chunk
    while s < n:
        if check is not None:
            check()
        e = min(s + size, n)
        jacobi = Jacobi(block, z, x, affine, cache, last, s, e, guidance)
        if draft is not None and e - s > 1:
            jacobi.draft(draft, opts)
        sweeps = jacobi.solve(rope, opts)
        if opts.grow and sweeps <= (e - s) // 4:
            size = min(2 * size, GROWTH * chunk)
        s = e
    return x, affine


class Jacobi:
    """Jacobi iteration on tokens s..e-1 of x (B, n, C), updated in place with their scale and
    shift (affine), keys and values written to the block's cache."""

    def __init__(self, block, z, x, affine, cache, last, s, e, guidance) -> None:
        self.block, self.z, self.x, self.affine, self.cache = block, z, x, affine, cache
        self.last, self.s, self.e, self.guidance = last, s, e, guidance

    def sweep(self, block: FlowBlock, rope, lo: int) -> torch.Tensor:
        """x[lo:e] <- shift + scale * z from inputs x[lo-1:e-1]; returns the relative squared
        change over the chunk (tokens before lo are final: they change 0)."""
        x, s, e = self.x, self.s, self.e
        before = self.last if lo == 0 else x[:, lo - 1 : lo]
        scale, shift = block.step(torch.cat([before, x[:, lo : e - 1]], dim=1), self.cache, rope)
        if self.guidance > 0:
            scale, shift = guided(scale, shift, self.guidance)
        new = shift + scale * self.z[:, lo:e]
        change = (new - x[:, lo:e]).square().sum()
        x[:, lo:e] = new
        self.affine[0, :, lo:e], self.affine[1, :, lo:e] = scale, shift
        return change / x[:, s:e].square().sum()

    def draft(self, draft: Draft, opts: SamplerOptions) -> None:
        """Sweeps of the low-precision copy (nothing committed) until the change is below the
        threshold or stops falling (its rounding floor)."""
        previous = float("inf")
        for _ in range(opts.max_iter):
            change = float(self.sweep(draft.block, draft.rope, self.s))
            if change < opts.threshold or change > 0.5 * previous:
                return
            previous = change

    def solve(self, rope, opts: SamplerOptions) -> int:
        """Sweep k makes token s + k exact: its keys/values (from exact inputs) are committed and
        later sweeps start after it. Stops as the reference: the relative squared change over the
        chunk below `threshold`, or `max_iter` sweeps, or every token exact. Returns the sweeps."""
        lo = self.s
        for i in range(opts.max_iter):
            change = self.sweep(self.block, rope, lo)
            if lo + 1 == self.e or i == opts.max_iter - 1 or bool(change < opts.threshold):
                break
            self.cache.commit(1)
            lo += 1
        self.cache.commit(self.e - lo)
        return i + 1


def fast_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices faster than float32 ones."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        avx = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        return bool(amx() or avx())
    return False


_DRAFTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_draft(block: FlowBlock, rope, opts: SamplerOptions) -> Draft | None:
    """A bfloat16 copy of a float32 `block` on a device with fast bfloat16, else None. The copy
    is kept for later samplers while the block's weights are unchanged."""
    weight = block.proj_in.weight
    if not (opts.draft and opts.jacobi and weight.dtype == torch.float32):
        return None
    if not fast_bfloat16(weight.device):
        return None
    versions = tuple(p._version for p in block.parameters())
    kept = _DRAFTS.get(block)
    if kept is None or kept[0] != versions:
        low = copy.deepcopy(block).to(torch.bfloat16)
        for module in low.modules():  # weights only: no hooks of the original
            module._forward_pre_hooks.clear()
            module._forward_hooks.clear()
        kept = versions, low
        _DRAFTS[block] = kept
    return Draft(kept[1], (rope[0].to(torch.bfloat16), rope[1].to(torch.bfloat16)))


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
        self.draft = make_draft(self.block, self.rope, opts)
        self.cache = self.block.new_cache(
            y.size(0),
            y.size(1) + frames * hw[0] * hw[1],
            device,
            dtype,
            draft_dtype=torch.bfloat16 if self.draft else None,
        )
        self.history: deque[torch.Tensor] = deque(maxlen=max(self.context, 1))
        self.affine: torch.Tensor | None = None  # the last frame's scale and shift per token
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
        inputs = torch.cat([self.last, tokens[:, :-1]], dim=1)
        scale, shift = self.block.step(inputs, self.cache, self.rope)
        if self.guidance > 0:
            scale, shift = guided(scale, shift, self.guidance)
        self.affine = torch.stack([scale, shift])
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
        # warm start: the last frame's scale and shift applied to this frame's noise
        init = z if self.affine is None else self.affine[1] + self.affine[0] * z
        x, self.affine = invert_frame(
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
            self.draft,
        )
        self.last = x[:, -1:]
        self.in_window += 1
        self._record(x)
        b = noise.size(0)
        return permute(x[:b], self.block.order, 1).reshape(noise.shape)


def shallow_reverse(
    model: StarFlow, frame: torch.Tensor, opts: SamplerOptions, kept: dict | None = None
) -> torch.Tensor:
    """Invert the shallow blocks (top-1 down to 0) for one frame (B, h, w, C) of each sample.
    `kept` holds each block's rotary table and KV cache from frame to frame. Chunks are 4x the
    block size (the top block's for later frames) and the threshold `SHALLOW_THRESHOLD` times
    the top block's: these blocks cost little per sweep, and their early stop was most of the
    error against the sequential answer."""
    b, h, w, c = frame.shape
    x = frame.reshape(b, h * w, c).float()
    kept = {} if kept is None else kept
    shallow_opts = replace(opts, threshold=SHALLOW_THRESHOLD * opts.threshold)
    for block in reversed(model.shallow):
        with resident(model, block):
            dtype, device = block.proj_in.weight.dtype, block.proj_in.weight.device
            key = (block, b, h, w, device)
            if key not in kept:
                kept[key] = (
                    block.rope(h, w, 1, 0, dtype, device),
                    block.new_cache(b, h * w, device, dtype),
                )
            rope, cache = kept[key]
            cache.reset()
            z = permute(x.to(device), block.order, 1)
            last = block.sos_embed.expand(b, -1, -1).float()
            chunk = 4 * opts.block_size if opts.jacobi else 1
            x, _ = invert_frame(block, z, cache, rope, last, z, chunk, shallow_opts, 0.0)
            x = permute(x, block.order, 1)
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
        self.shallow_kept: dict = {}

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
        x = shallow_reverse(self.model, self.top.next(z), self.opts, self.shallow_kept)
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
