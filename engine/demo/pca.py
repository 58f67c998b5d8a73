"""The first demo model's parts: a PCA patch codec and a word-embedding text encoder.

Codec: each 8x8 RGB patch projected on its top principal components.

Frames (B, T, 3, 48, 64) in [-1, 1] <-> latents (B, T, K, 6, 8), each component scaled to unit
variance. Linear, per frame (temporal factor 1), fitted by one SVD of Shapes-world renders.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.api import EngineError
from engine.demo.text import GRAMMAR_WORDS
from engine.demo.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES

PATCH = 8


def to_patches(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B, T, H/8, W/8, 8*8*3) with channel order (py, px, c)."""
    b, t, c, h, w = frames.shape
    x = frames.reshape(b, t, c, h // PATCH, PATCH, w // PATCH, PATCH)
    return x.permute(0, 1, 3, 5, 4, 6, 2).reshape(b, t, h // PATCH, w // PATCH, -1)


def from_patches(p: torch.Tensor) -> torch.Tensor:
    b, t, h, w, _ = p.shape
    x = p.reshape(b, t, h, w, PATCH, PATCH, 3)
    return x.permute(0, 1, 6, 2, 4, 3, 5).reshape(b, t, 3, h * PATCH, w * PATCH)


class PCACodec(nn.Module):
    spatial_factor = PATCH
    temporal_factor = 1

    def __init__(self, components: int) -> None:
        super().__init__()
        dim = PATCH * PATCH * 3
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("basis", torch.zeros(components, dim))  # orthonormal rows
        self.register_buffer("scale", torch.ones(components))  # std of each component

    @property
    def channels(self) -> int:
        return self.basis.size(0)

    @classmethod
    def fit(cls, frames: np.ndarray, components: int) -> PCACodec:
        """PCA over the 8x8 patches of (N, H, W, 3) uint8 frames."""
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None] / 127.5 - 1
        p = to_patches(x).reshape(-1, PATCH * PATCH * 3).double()
        mean = p.mean(0)
        _, s, vt = torch.linalg.svd(p - mean, full_matrices=False)
        codec = cls(components)
        codec.mean.copy_(mean.float())
        codec.basis.copy_(vt[:components].float())
        codec.scale.copy_((s[:components] / (p.size(0) - 1) ** 0.5).float())
        return codec

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [-1, 1] -> (B, T, K, H/8, W/8)."""
        coef = (to_patches(frames.float()) - self.mean) @ self.basis.T / self.scale
        return coef.permute(0, 1, 4, 2, 3).contiguous()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, T, K, h, w) -> (B, T, 3, 8h, 8w) in [-1, 1]."""
        p = (latents.float().permute(0, 1, 3, 4, 2) * self.scale) @ self.basis + self.mean
        return from_patches(p).clamp(-1, 1)

    def stream_decoder(self) -> FrameDecoder:
        return FrameDecoder(self)


class FrameDecoder:
    """Per-frame codec: each latent frame decodes to one video frame as it arrives."""

    def __init__(self, codec: PCACodec) -> None:
        self.codec = codec

    def push(self, latent: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latent[:, None])


# the first demo model's word order (its bundles' embeddings follow it)
_WORDS = [
    *("(v2v)", "(extend)"),
    *GRAMMAR_WORDS,
    *SIZES,
    *COLOURS,
    *SHAPES,
    *BACKGROUNDS,
    *sorted({w for m in MOTIONS for w in m.split()}),
]
WORD_VOCAB = ["<pad>"] + list(dict.fromkeys(_WORDS))


class WordText(nn.Module):
    """Word embeddings + learned positions over the grammar vocabulary (no BOS token)."""

    def __init__(self, dim: int = 64, max_tokens: int = 24) -> None:
        super().__init__()
        self.dim, self.max_tokens = dim, max_tokens
        self.index = {w: i for i, w in enumerate(WORD_VOCAB)}
        self.embed = nn.Embedding(len(WORD_VOCAB), dim)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        ids = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for row, text in enumerate(texts):
            words = text.split()
            if len(words) > self.max_tokens:
                raise EngineError(
                    f"prompt too long for the demo model ({len(words)} > {self.max_tokens} words)"
                )
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise EngineError(f"the demo model does not know the word(s): {', '.join(unknown)}")
            ids[row, : len(words)] = torch.tensor([self.index[w] for w in words], dtype=torch.long)
        return ids

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = ids > 0
        emb = self.norm(self.embed(ids) + self.pos[: ids.size(1)])
        return emb * mask[..., None], mask

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Strings -> (B, max_tokens, dim) embeddings (padding zeroed), (B, max_tokens) mask."""
        return self(self.tokenize(texts).to(self.pos.device))
