"""The demo model's text encoder: a word-level tokenizer over the closed Shapes-world grammar
(captions, edit instructions, task prefixes) and a small learned transformer, trained together
with the flow.

Tokens are [<bos>, word, word, ...] padded with <pad> to max_tokens. <bos> is always present,
so the empty string (the null prompt of classifier-free guidance) encodes to one learned token.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.api import EngineError

PAD, BOS = "<pad>", "<bos>"
TASK_WORDS = ("(extend)", "(v2v)")
GRAMMAR_WORDS = (
    "a",
    "and",
    "on",
    "background",
    "add",
    "that",
    "remove",
    "the",
    "make",
    "change",
    "to",
)


def grammar_vocab() -> tuple[str, ...]:
    """Every word of shared/shapes_world.md's caption and instruction grammar, with the specials."""
    from engine.demo.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES

    motion_words = [w for m in MOTIONS for w in m.split()]
    words = [*TASK_WORDS, *GRAMMAR_WORDS, *SIZES, *COLOURS, *SHAPES, *BACKGROUNDS, *motion_words]
    return (PAD, BOS, *dict.fromkeys(words))


@dataclass(frozen=True)
class TextConfig:
    vocab: tuple[str, ...]
    dim: int = 128
    max_tokens: int = 24  # including <bos>
    layers: int = 1
    heads: int = 4

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown text encoder config field(s): {sorted(unknown)}")
        return cls(**{**d, "vocab": tuple(d["vocab"])})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "vocab": list(self.vocab)}


class Tokenizer:
    """Whitespace word tokenizer over a closed vocabulary; case-insensitive, a final '.' ignored."""

    def __init__(self, vocab: tuple[str, ...], max_tokens: int) -> None:
        if vocab[:2] != (PAD, BOS):
            raise ValueError(f"the vocabulary must start with {PAD} and {BOS}")
        self.index = {w: i for i, w in enumerate(vocab)}
        self.max_tokens = max_tokens

    def words(self, text: str) -> list[str]:
        words = text.lower().strip().removesuffix(".").split()
        unknown = [w for w in words if w not in self.index or w in (PAD, BOS)]
        if unknown:
            raise EngineError(
                f"the demo model does not know the word(s) {', '.join(map(repr, unknown))}; "
                "describe one or two shapes, e.g. 'a red circle moves left on a black background'"
            )
        if len(words) + 1 > self.max_tokens:
            raise EngineError(
                f"prompt too long for the demo model: {len(words)} words "
                f"(at most {self.max_tokens - 1})"
            )
        return words

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """Strings -> token ids (B, max_tokens) int64, <bos> first, <pad> (0) after the words."""
        ids = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [self.index[BOS]] + [self.index[w] for w in self.words(text)]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + MLP over the tokens; padding keys are masked out."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        keys = mask[:, None, None, :]  # (B, 1, 1, N): <bos> is always a valid key
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)  # (B, h, N, d/h)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class DemoTextEncoder(nn.Module):
    """Implements engine.api.TextEncoder: strings -> (B, max_tokens, dim) float embeddings with
    padding positions zeroed, and the (B, max_tokens) bool mask of real tokens."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim, self.max_tokens = cfg.dim, cfg.max_tokens
        self.tokenizer = Tokenizer(cfg.vocab, cfg.max_tokens)
        self.embed = nn.Embedding(len(cfg.vocab), cfg.dim)
        self.pos = nn.Parameter(torch.randn(cfg.max_tokens, cfg.dim) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(cfg.dim, cfg.heads) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | TextConfig) -> DemoTextEncoder:
        return cls(cfg if isinstance(cfg, TextConfig) else TextConfig.from_dict(cfg))

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (B, L) -> embeddings (B, L, dim) (padding zeroed), mask (B, L) bool."""
        mask = ids != 0
        x = self.embed(ids) + self.pos[: ids.size(1)]
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x) * mask[..., None], mask

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Strings (no padding needed; "" is the null prompt) -> embeddings, mask."""
        return self(self.tokenizer(texts).to(self.pos.device))
