"""The learnable self-denoiser: a bidirectional transformer over latent frames, block-causal in time."""

from __future__ import annotations

import torch
from torch import nn

from .layers import AttentionBlock, RMSNorm
from .rope import Rotary, positions


def frame_window_mask(
    frames: int, tokens_per_frame: int, txt_len: int, ahead: int, window: int | None
) -> torch.Tensor:
    """Boolean (S, S) mask over [text; frames]: text keys are always visible; a frame-f query sees
    frames f + ahead - 1 - window .. f + ahead - 1 (the reference's block-causal window)."""
    s = txt_len + frames * tokens_per_frame
    q = torch.arange(s)[:, None]
    k = torch.arange(s)[None, :]
    g = window if window is not None else 10000
    fk, fq = (k - txt_len) // tokens_per_frame, (q - txt_len) // tokens_per_frame
    f_now = torch.relu(q - txt_len) // tokens_per_frame
    return (k < txt_len) | ((fk >= fq + ahead - 1 - g) & (fk <= f_now + ahead - 1))


class Denoiser(nn.Module):
    """Predicts, for latents x (B, T, h, w, C), the residual that the sampler removes."""

    def __init__(
        self,
        token_channels: int,
        channels: int,
        layers: int,
        head_dim: int,
        txt_dim: int,
        *,
        expansion: float = 4.0,
        use_final_norm: bool = True,
        pt_seq_len: int = 1,
        block_causal: int = 0,
        window: int | None = None,
    ) -> None:
        super().__init__()
        self.proj_in = nn.Linear(token_channels, channels)
        self.proj_out = nn.Linear(channels, token_channels)
        nn.init.zeros_(self.proj_out.weight)
        if txt_dim > 0:
            self.proj_txt = nn.Linear(txt_dim, channels)
        self.attn_blocks = nn.ModuleList(
            AttentionBlock(channels, head_dim, expansion) for _ in range(layers)
        )
        if use_final_norm:
            self.final_norm = RMSNorm(channels)
        self.txt_dim, self.pt_seq_len = txt_dim, pt_seq_len
        self.block_causal, self.window = block_causal, window
        self.rotary = Rotary(head_dim)

    @property
    def lookahead(self) -> int:
        """Frames after frame t that can change the output at frame t."""
        return len(self.attn_blocks) * max(self.block_causal - 1, 0)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        b, t, h, w, c = x.shape
        hidden = self.proj_in(x.reshape(b, t * h * w, c).to(self.proj_in.weight.dtype))
        n_txt = 0
        if self.txt_dim > 0:
            text = self.proj_txt(y.to(hidden.dtype))
            n_txt = text.size(1)
            hidden = torch.cat([text, hidden], dim=1)
        pos = positions(h, w, t, n_txt, self.pt_seq_len)
        rope = self.rotary.cos_sin(pos, hidden.dtype, hidden.device)
        mask = None
        if self.block_causal > 0:
            mask = frame_window_mask(t, h * w, n_txt, self.block_causal, self.window).to(x.device)
        for i, block in enumerate(self.attn_blocks):
            hidden = block(hidden, rope, causal=False, mask=mask, layer=i)
        hidden = hidden[:, n_txt:]
        if hasattr(self, "final_norm"):
            hidden = self.final_norm(hidden)
        return self.proj_out(hidden).reshape(b, t, h, w, c)
