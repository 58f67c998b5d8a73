"""Transformer pieces with the reference's tensor names: pre-LayerNorm attention, GELU MLP, RMSNorm."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .rope import rotate


class RMSNorm(nn.Module):
    """RMS norm with unit offset: x / rms(x) * (1 + weight), computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (out * (1 + self.weight.float())).type_as(x)


class KVCache:
    """Keys (after rotation) and values of every layer of one flow block, preallocated.

    Entries written past `length` are provisional (a Jacobi iterate) until `commit(n)`. With a
    `draft_dtype`, a second copy in that dtype serves a low-precision copy of the block: keys it
    writes stay there, and committed entries are copied into it.
    """

    def __init__(
        self,
        layers: int,
        batch: int,
        heads: int,
        capacity: int,
        head_dim: int,
        device: torch.device | str,
        dtype: torch.dtype,
        draft_dtype: torch.dtype | None = None,
    ) -> None:
        shape = (layers, batch, heads, capacity, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.draft: tuple[torch.Tensor, torch.Tensor] | None = None
        if draft_dtype is not None:
            self.draft = tuple(torch.zeros(shape, device=device, dtype=draft_dtype) for _ in "kv")
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.size(3)

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, n, D) after the committed entries; return all keys/values so far
        (from the draft copy when k has its dtype)."""
        end = self.length + k.size(2)
        if end > self.capacity:
            raise RuntimeError(f"KV cache overflow: {end} > {self.capacity}")
        keys, values = self.k, self.v
        if self.draft is not None and k.dtype == self.draft[0].dtype != keys.dtype:
            keys, values = self.draft
        keys[layer, :, :, self.length : end] = k
        values[layer, :, :, self.length : end] = v
        return keys[layer, :, :, :end], values[layer, :, :, :end]

    def commit(self, n: int) -> None:
        if self.draft is not None and n > 0:
            a, b = self.length, self.length + n
            self.draft[0][:, :, :, a:b] = self.k[:, :, :, a:b]
            self.draft[1][:, :, :, a:b] = self.v[:, :, :, a:b]
        self.length += n

    def reset(self) -> None:
        self.length = 0


@dataclass(frozen=True)
class FrameWindows:
    """Attention where query rows q0..q1-1 see the text keys (the first `txt_len`) and keys
    k0..k1-1: runs (q0, q1, k0, k1). One small attention per run, no (S, S) mask."""

    txt_len: int
    runs: tuple[tuple[int, int, int, int], ...]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v (B, H, S, D) -> (B, H, S, D)."""
        out = torch.empty_like(q)
        n = self.txt_len
        for q0, q1, k0, k1 in self.runs:
            keys = torch.cat([k[:, :, :n], k[:, :, k0:k1]], dim=2)
            values = torch.cat([v[:, :, :n], v[:, :, k0:k1]], dim=2)
            out[:, :, q0:q1] = F.scaled_dot_product_attention(q[:, :, q0:q1], keys, values)
        return out


class Attention(nn.Module):
    def __init__(self, channels: int, head_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.heads = channels // head_dim
        self.head_dim = head_dim
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        causal: bool,
        mask: torch.Tensor | FrameWindows | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        """x (B, S, C); rope cos/sin (S, D) for these S positions; with a cache, keys extend it;
        `mask`: boolean (S, S') where True attends, additive float (S, S'), or FrameWindows."""
        b, s, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, s, 3, self.heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, S, D)
        q, k = rotate(qkv[:2], *rope).unbind(0)  # queries and keys in one rotation
        v = qkv[2]
        if cache is not None:
            k, v = cache.write(layer, k, v)
        if isinstance(mask, FrameWindows):
            out = mask.attend(q, k.to(q.dtype), v.to(q.dtype))
            return self.proj(out.transpose(1, 2).reshape(b, s, -1))
        if causal and k.size(2) > s and mask is None:
            mask = torch.ones(s, k.size(2), dtype=torch.bool, device=x.device).tril(k.size(2) - s)
            causal = False
        out = F.scaled_dot_product_attention(
            q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask, is_causal=causal and mask is None
        )
        return self.proj(out.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, channels: int, expansion: float) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.norm = nn.LayerNorm(channels)
        self.main = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(self.norm(x))


class AttentionBlock(nn.Module):
    def __init__(self, channels: int, head_dim: int, expansion: float) -> None:
        super().__init__()
        self.attention = Attention(channels, head_dim)
        self.mlp = MLP(channels, expansion)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        causal: bool,
        mask: torch.Tensor | FrameWindows | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.attention(x, rope, causal, mask, cache, layer)
        return x + self.mlp(x)
