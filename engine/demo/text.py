"""The demo model's text encoder: a word-level tokenizer over the Shapes-world grammar and a
learned embedding with learned positions (trained together with the flow)."""

from __future__ import annotations

import torch
from torch import nn

from engine.api import EngineError
from engine.shapes.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES

GRAMMAR_WORDS = (
    ["(v2v)", "(extend)", "a", "and", "on", "background", "add", "that", "remove", "the", "make",
     "change", "to"]
    + list(SIZES) + list(COLOURS) + list(SHAPES) + list(BACKGROUNDS)
    + sorted({w for m in MOTIONS for w in m.split()})
)
VOCAB = ["<pad>"] + list(dict.fromkeys(GRAMMAR_WORDS))


class DemoTextEncoder(nn.Module):
    def __init__(self, dim: int = 64, max_tokens: int = 24) -> None:
        super().__init__()
        self.dim, self.max_tokens = dim, max_tokens
        self.index = {w: i for i, w in enumerate(VOCAB)}
        self.embed = nn.Embedding(len(VOCAB), dim)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        ids = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for row, text in enumerate(texts):
            words = text.split()
            if len(words) > self.max_tokens:
                raise EngineError(f"prompt too long for the demo model ({len(words)} > {self.max_tokens} words)")
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
