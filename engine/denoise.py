"""The learnable denoiser applied in the reference's chunk schedule, whole-clip or streaming.

The reference denoises a clip in chunks of `steps` latent frames (the whole clip, or the
attention window for long videos); each chunk after the first starts with the last `overlap`
frames of the previous one, already denoised, and keeps only its new frames. Inside a chunk the
denoiser is block-causal, so frame t depends only on frames up to t + lookahead: a streamed frame
is final as soon as those exist, and streaming equals whole-clip denoising exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .model import StarFlow


def chunk_schedule(
    total: int, steps: int | None, overlap: int | None
) -> list[tuple[int, int, int]]:
    """[(start, keep_from, end)] chunks: frames keep_from..end-1 come from chunk start..end-1."""
    steps = steps or total
    chunks, start, skip = [], 0, 0
    while start < total:
        end = min(start + steps, total)
        if start + skip < end:  # the reference also runs chunks that keep nothing: skip them
            chunks.append((start, start + skip, end))
        if end == total:
            break
        skip = steps - 1 if overlap is None else overlap
        if steps - skip <= 0:
            raise ValueError(f"denoiser overlap {skip} must be below the chunk length {steps}")
        start += steps - skip
    return chunks


def chunk_length(steps: int | None, overlap: int | None) -> int | None:
    """`steps` lengthened where needed to exceed the overlap (the reference would loop forever):
    the denoiser's chunks do not depend on the sampler's attention window."""
    if steps is None or overlap is None or steps > overlap:
        return steps
    return overlap + 1


def denoise_clip(
    model: StarFlow,
    x: torch.Tensor,
    y: torch.Tensor | None,
    steps: int | None = None,
    overlap: int | None = None,
) -> torch.Tensor:
    """Whole-clip denoising x (B, T, C, H, W) -> x - 0.3 * denoiser(x), in the chunk schedule."""
    out = x.clone()
    with torch.no_grad():
        for start, keep, end in chunk_schedule(x.size(1), steps, overlap):
            den = model.denoise(out[:, start:end], y)
            out[:, keep:end] = den[:, keep - start :]
    return out


class DenoiseStream:
    """Feed raw latent frames one at a time; get denoised frames as soon as they are final."""

    def __init__(
        self,
        model: StarFlow,
        y: torch.Tensor | None,
        total: int,
        steps: int | None = None,
        overlap: int | None = None,
    ) -> None:
        self.model, self.y, self.total = model, y, total
        self.chunks = chunk_schedule(total, steps, overlap)
        self.lookahead = model.learnable_self_denoiser.lookahead
        self.raw: list[torch.Tensor] = []
        self.done: list[torch.Tensor] = []  # denoised frames, final
        self.next_out = 0

    def _chunk_of(self, t: int) -> tuple[int, int, int]:
        return next(c for c in self.chunks if c[1] <= t < c[2])

    def push(self, frame: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """frame (B, C, H, W) -> (index, denoised frame) for every frame that became final."""
        if len(self.raw) >= self.total:
            raise ValueError("more frames pushed than the stream was opened for")
        self.raw.append(frame)
        while self.next_out < len(self.raw):
            start, keep, end = self._chunk_of(self.next_out)
            avail = min(end, len(self.raw))
            if avail < min(end, self.next_out + self.lookahead + 1):
                break
            # as the reference: the chunk's overlap frames are already denoised, the rest raw
            x = torch.stack(self.done[start:keep] + self.raw[keep:avail], dim=1)
            with torch.no_grad():
                den = self.model.denoise(x, self.y)
            last_final = avail if avail == end else avail - self.lookahead
            for t in range(self.next_out, last_final):
                self.done.append(den[:, t - start])
                yield t, self.done[t]
            self.next_out = last_final
