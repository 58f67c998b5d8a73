"""One autoregressive affine flow block (the reference's `MetaBlock`).

A block reads tokens in a fixed order (identity or flipped within each frame), predicts each
token's scale and shift from the tokens before it (SOS first) and the text, and maps
x -> z = (x - shift) / scale. Sampling inverts it token by token or by Jacobi iteration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import AttentionBlock, KVCache, RMSNorm
from .rope import Rotary, positions

INV_SOFTPLUS_1 = 0.541324854612918  # softplus(INV_SOFTPLUS_1) == 1: a zero output means scale 1


def permute(tokens: torch.Tensor, kind: str, frames: int) -> torch.Tensor:
    """Reorder tokens (B, N, C) of `frames` equal frames; every kind is its own inverse."""
    if kind == "identity":
        return tokens
    if kind == "flip":
        return tokens.flip(1)
    b, n, c = tokens.shape
    return tokens.view(b, frames, n // frames, c).flip(2).reshape(b, n, c)  # flip_in_frame


def step_mask(cached: int, n: int, dtype: torch.dtype, device) -> torch.Tensor | None:
    """Additive mask (n, cached + n) for n causal queries after `cached` keys; None where the
    causal pattern alone is right (nothing cached)."""
    if cached == 0:
        return None
    allowed = torch.ones(n, cached + n, dtype=torch.bool, device=device).tril(cached)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, -torch.inf)


def guided(scale: torch.Tensor, shift: torch.Tensor, w: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier-free guidance as a product of Gaussians, for a batch [conditional; unconditional].

    The reference's formula: with s = min(sigma_c / sigma_u, 1)^2, sigma = sigma_c / sqrt(1 + w - w s),
    mu = ((1 + w) mu_c - w s mu_u) / (1 + w - w s). Both halves get the guided values.
    """
    sc, su = scale.chunk(2)
    mc, mu = shift.chunk(2)
    s = (sc / su).clip(max=1.0).square()
    denom = 1 + w - w * s
    sigma = sc / denom.sqrt()
    mean = ((1 + w) * mc - (w * s) * mu) / denom
    return torch.cat([sigma, sigma]), torch.cat([mean, mean])


class FlowBlock(nn.Module):
    def __init__(
        self,
        token_channels: int,
        channels: int,
        layers: int,
        head_dim: int,
        txt_dim: int,
        order: str,
        *,
        expansion: float = 4.0,
        soft_clip: float = 0.0,
        use_softplus: bool = True,
        use_final_norm: bool = True,
        pt_seq_len: int = 1,
        local_attn_window: int | None = None,
    ) -> None:
        super().__init__()
        self.proj_in = nn.Linear(token_channels, channels)
        self.proj_out = nn.Linear(channels, 2 * token_channels)
        nn.init.zeros_(self.proj_out.weight)
        self.sos_embed = nn.Parameter(torch.randn(1, 1, token_channels))
        if txt_dim > 0:
            self.proj_txt = nn.Linear(txt_dim, channels)
        self.attn_blocks = nn.ModuleList(
            AttentionBlock(channels, head_dim, expansion) for _ in range(layers)
        )
        if use_final_norm:
            self.final_norm = RMSNorm(channels)
        self.order, self.txt_dim, self.soft_clip = order, txt_dim, soft_clip
        self.use_softplus, self.pt_seq_len = use_softplus, pt_seq_len
        self.local_attn_window = local_attn_window
        self.heads, self.head_dim = channels // head_dim, head_dim
        self.rotary = Rotary(head_dim)

    # ---- shared pieces ---------------------------------------------------------------------------
    def rope(self, h: int, w: int, frames: int, txt_len: int, dtype, device):
        pos = positions(h, w, frames, txt_len if self.txt_dim > 0 else 0, self.pt_seq_len)
        return self.rotary.cos_sin(pos, dtype, device)

    def transform(
        self, hidden: torch.Tensor, rope, cache: KVCache | None = None, mask=None
    ) -> torch.Tensor:
        """Causal transformer over hidden (B, S, C) at rope positions (S, D); `mask` (S, S') where
        the causal pattern alone does not say it (queries after cached keys)."""
        causal = mask is None
        for i, block in enumerate(self.attn_blocks):
            hidden = block(hidden, rope, causal=causal, mask=mask, cache=cache, layer=i)
        return hidden

    def head(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token hidden states -> (scale, shift) in float32; scale multiplies noise when sampling."""
        if hasattr(self, "final_norm"):
            hidden = self.final_norm(hidden)
        out = self.proj_out(hidden)
        if self.soft_clip > 0:
            out = self.soft_clip * torch.tanh(out / self.soft_clip)
        raw, shift = out.float().chunk(2, dim=-1)
        scale = F.softplus(raw + INV_SOFTPLUS_1) if self.use_softplus else raw.exp()
        return scale, shift

    def text_hidden(self, y: torch.Tensor) -> torch.Tensor:
        return self.proj_txt(y.to(self.proj_txt.weight.dtype))

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens in block order (B, N, C) -> transformer inputs: SOS then all but the last token."""
        sos = self.sos_embed.expand(tokens.size(0), -1, -1).to(tokens.dtype)
        return torch.cat([sos, tokens[:, :-1]], dim=1)

    # ---- likelihood direction --------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, h, w, C) -> z (same), logdet (B, T*h*w, C) in block order.

        With a cache, the keys/values of [text; SOS; tokens[:-1]] are stored (context prefill).
        """
        b, t, h, w, c = x.shape
        tokens = permute(x.reshape(b, t * h * w, c), self.order, t)
        wdtype = self.proj_in.weight.dtype
        hidden = self.proj_in(self.inputs(tokens).to(wdtype))
        n_txt = 0
        if self.txt_dim > 0:
            text = self.text_hidden(y)
            n_txt = text.size(1)
            hidden = torch.cat([text, hidden], dim=1)
        rope = self.rope(h, w, t, n_txt, hidden.dtype, hidden.device)
        hidden = self.transform(hidden, rope, cache)
        if cache is not None:
            cache.commit(hidden.size(1))
        scale, shift = self.head(hidden[:, n_txt:])
        z = (tokens.float() - shift) / scale
        z = permute(z, self.order, t).reshape(b, t, h, w, c)
        return z.to(x.dtype), -torch.log(scale)

    # ---- sampling ----------------------------------------------------------------------------------
    def new_cache(
        self, batch: int, capacity: int, device, dtype, draft_dtype: torch.dtype | None = None
    ) -> KVCache:
        layers = len(self.attn_blocks)
        return KVCache(
            layers, batch, self.heads, capacity, self.head_dim, device, dtype, draft_dtype
        )

    def step(
        self, inputs: torch.Tensor, cache: KVCache, rope_table
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run `inputs` (B, n, C) at the next n cache positions (written, not committed)."""
        n = inputs.size(1)
        start, end = cache.length, cache.length + n
        rope = (rope_table[0][start:end], rope_table[1][start:end])
        dtype = self.proj_in.weight.dtype
        hidden = self.proj_in(inputs.to(dtype))
        return self.head(
            self.transform(hidden, rope, cache, step_mask(start, n, dtype, inputs.device))
        )

    def prefill_text(self, y: torch.Tensor, cache: KVCache, rope_table) -> None:
        n = y.size(1)
        rope = (
            rope_table[0][cache.length : cache.length + n],
            rope_table[1][cache.length : cache.length + n],
        )
        self.transform(self.text_hidden(y), rope, cache)
        cache.commit(n)
