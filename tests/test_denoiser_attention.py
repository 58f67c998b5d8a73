"""The denoiser's block-causal attention without an (S, S) mask: frame-by-frame key spans cover
exactly the mask's pattern, give the masked attention's output (and the reference's, on the golden
vectors), and are built once per sequence length."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_reference_parity import CASES, EXACT, rel_err

from engine.checkpoint import build_model
from engine.config import FlowConfig
from engine.model import denoiser as den
from engine_utils import random_model, tiny_config

SHAPES = [  # frames, tokens per frame, text tokens, lookahead, window
    (5, 6, 4, 2, None),
    (7, 3, 0, 2, 2),
    (6, 4, 5, 3, 1),
    (4, 2, 9, 2, 0),
    (21, 5, 3, 2, 10),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_frame_spans_cover_exactly_the_mask(shape):
    mask = den.frame_window_mask(*shape)
    spans = den.frame_windows(*shape)
    covered = torch.zeros_like(mask)
    for q0, q1, k0, k1 in spans.runs:
        covered[q0:q1, : spans.txt_len] = True
        covered[q0:q1, k0:k1] = True
    assert torch.equal(covered, mask)
    q, k, v = torch.randn(3, 1, 2, mask.size(0), 8).unbind(0)
    masked = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(spans.attend(q, k, v), masked, rtol=0, atol=1e-6)


def test_long_sequences_skip_the_mask_and_give_the_same_denoiser(monkeypatch):
    model = random_model(tiny_config(denoiser_window=2), std=0.05)
    x, y = torch.randn(1, 6, 4, 4, 4), torch.randn(1, 5, 8)
    with torch.no_grad():
        masked = model.denoiser(x, y)
        assert isinstance(model.learnable_self_denoiser._attention[1], torch.Tensor)
        monkeypatch.setattr(den, "MASK_MAX_TOKENS", 0)
        model.learnable_self_denoiser._attention = None  # the pattern is cached per length
        spans = model.denoiser(x, y)
    pattern = model.learnable_self_denoiser._attention[1]
    assert isinstance(pattern, den.FrameWindows)
    torch.testing.assert_close(spans, masked, rtol=0, atol=1e-5)
    with torch.no_grad():
        model.denoiser(x, y)
    assert model.learnable_self_denoiser._attention[1] is pattern  # built once per length


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_golden_denoiser_without_the_mask(case, monkeypatch):
    monkeypatch.setattr(den, "MASK_MAX_TOKENS", 0)
    g = load_file(str(case.with_suffix(".safetensors")))
    model = build_model(
        FlowConfig.from_dict(json.loads(case.read_text())["config"]), g, prefix="weights."
    )
    with torch.no_grad():
        assert rel_err(model.denoiser(g["in.x"], g["in.y"]), g["denoiser.out"]) <= EXACT
