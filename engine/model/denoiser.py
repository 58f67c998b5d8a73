"""The learnable self-denoiser: a bidirectional transformer over latent frames, block-causal in time."""

from __future__ import annotations

import torch
from torch import nn

from .layers import AttentionBlock, FrameWindows, RMSNorm
from .rope import Rotary, positions

MASK_MAX_TOKENS = 8192  # longer sequences attend frame by frame instead of through an (S, S) mask


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


def frame_windows(
    frames: int, tokens_per_frame: int, txt_len: int, ahead: int, window: int | None
) -> FrameWindows:
    """The rows of `frame_window_mask` as runs of queries that see the text and one span of frames:
    the same attention without building the (S, S) mask."""
    s = txt_len + frames * tokens_per_frame
    q = torch.arange(s)
    g = window if window is not None else 10000
    fq = torch.div(q - txt_len, tokens_per_frame, rounding_mode="floor")
    f_now = torch.relu(q - txt_len) // tokens_per_frame
    lo = (fq + ahead - 1 - g).clamp(0, frames)  # first visible frame of each query
    hi = torch.maximum((f_now + ahead).clamp(max=frames), lo)  # one past the last
    spans, counts = torch.unique_consecutive(torch.stack([lo, hi], 1), dim=0, return_counts=True)
    runs, start = [], 0
    for (a, b), n in zip(spans.tolist(), counts.tolist(), strict=True):
        k0, k1 = txt_len + a * tokens_per_frame, txt_len + b * tokens_per_frame
        runs.append((start, start + n, k0, k1))
        start += n
    return FrameWindows(txt_len, tuple(runs))


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
        self._attention: tuple[tuple, torch.Tensor | FrameWindows] | None = None

    def attention_pattern(
        self, t: int, tokens_per_frame: int, n_txt: int, device: torch.device
    ) -> torch.Tensor | FrameWindows:
        """The block-causal pattern for a sequence, built once per length on `device`: a boolean
        (S, S) mask for short sequences, frame-by-frame key spans for long ones."""
        key = (t, tokens_per_frame, n_txt, device)
        if self._attention is None or self._attention[0] != key:
            args = (t, tokens_per_frame, n_txt, self.block_causal, self.window)
            if n_txt + t * tokens_per_frame <= MASK_MAX_TOKENS:
                pattern = frame_window_mask(*args).to(device)
            else:
                pattern = frame_windows(*args)
            self._attention = (key, pattern)
        return self._attention[1]

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
            mask = self.attention_pattern(t, h * w, n_txt, hidden.device)
        for i, block in enumerate(self.attn_blocks):
            hidden = block(hidden, rope, causal=False, mask=mask, layer=i)
        hidden = hidden[:, n_txt:]
        if hasattr(self, "final_norm"):
            hidden = self.final_norm(hidden)
        return self.proj_out(hidden).reshape(b, t, h, w, c)
