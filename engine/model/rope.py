"""3D rotary position embedding of STARFlow-V: (row, col) scaled to `pt_seq_len`, text/frame on a third axis."""

from __future__ import annotations

import math

import torch

THETA = 10000.0
TIME_DIMS = 8  # rotary frequencies reserved for the third (text / frame) axis


def positions(h: int, w: int, frames: int, txt_len: int, pt_seq_len: int) -> torch.Tensor:
    """Positions (txt_len + frames*h*w, 3) float32 for a [text; frame 0; frame 1; ...] sequence.

    Spatial axes are scaled so that sqrt(h*w) tokens span `pt_seq_len`; frames count 0, 1, ...
    on the third axis (all 0 for a single image); text tokens sit at (0, 0, i / txt_len * pt_seq_len).
    """
    mean_len = math.sqrt(h * w)
    rows = torch.arange(h) / mean_len * pt_seq_len
    cols = torch.arange(w) / mean_len * pt_seq_len
    rows, cols = (g.reshape(-1) for g in torch.meshgrid(rows, cols, indexing="ij"))
    n = max(frames, 1)
    pos = torch.stack(
        [rows.repeat(n), cols.repeat(n), torch.arange(n).repeat_interleave(h * w).float()], dim=-1
    )
    if txt_len > 0:
        t = torch.arange(txt_len) / txt_len * pt_seq_len
        text = torch.stack([torch.zeros_like(t), torch.zeros_like(t), t], dim=-1)
        pos = torch.cat([text, pos])
    return pos


class Rotary:
    """Rotation angles for head_dim-wide heads: spatial frequencies on two axes, 8 on the third."""

    def __init__(self, head_dim: int) -> None:
        half = head_dim // 2
        space = half - TIME_DIMS
        self.freqs = 1.0 / THETA ** (torch.arange(0, space, 2).float() / space)  # (space/2,)
        self.freqs_t = 1.0 / THETA ** (torch.arange(0, TIME_DIMS).float() / TIME_DIMS)  # (8,)

    def angles(self, pos: torch.Tensor) -> torch.Tensor:
        """pos (S, 3) -> angles (S, head_dim), each frequency repeated for its (even, odd) pair."""
        a = torch.cat(
            [pos[:, :1] * self.freqs, pos[:, 1:2] * self.freqs, pos[:, 2:] * self.freqs_t], dim=-1
        )
        return a.repeat_interleave(2, dim=-1)

    def cos_sin(
        self, pos: torch.Tensor, dtype: torch.dtype, device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables (S, head_dim) for `rotate`: cos, and sin negated at each pair's first entry."""
        a = self.angles(pos).to(device)
        sign = torch.tensor([-1.0, 1.0], device=device).repeat(a.size(-1) // 2)
        return a.cos().to(dtype), (a.sin() * sign).to(dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Apply rotation to x (..., S, D) with pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin),
    given `Rotary.cos_sin`'s tables."""
    if x.dtype in _COMPLEX and x.device.type in ("cpu", "cuda") and not x.requires_grad:
        # sampling: one complex product (x0 + i x1)(cos + i sin), the same arithmetic, faster
        table = torch.complex(cos[..., 0::2], signed_sin[..., 1::2])
        pairs = x.unflatten(-1, (-1, 2))
        if pairs.storage_offset() % 2 or any(st % 2 for st in pairs.stride()[:-1]):
            pairs = pairs.contiguous()
        return torch.view_as_real(torch.view_as_complex(pairs) * table).flatten(-2)
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # pairs (x1, x0)
    return x * cos + swapped * signed_sin


_COMPLEX = (torch.float32, torch.float64)
