"""Every case of every golden file (reference STARFlow-V outputs) within the golden README's tolerances.

The folder is $STARFLOW_GOLDEN_DIR (default ../shared/golden beside the repo); each file's model
configuration is read from its JSON, so new seeds and sizes pass without code changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO_ROOT
from engine.checkpoint import build_model
from engine.config import FlowConfig
from engine.sampling import SamplerOptions, sample

GOLDEN = Path(os.environ.get("STARFLOW_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden"))
CASES = sorted(GOLDEN.glob("*.json")) if GOLDEN.is_dir() else []
EXACT, SAMPLING = 1e-4, 2e-3
JACOBI = dict(guidance=2.5, jacobi=True, block_size=8, max_iter=64, threshold=1e-9)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.float() - ref.float()).abs().max() / ref.float().abs().max()).item()


def test_golden_folder_is_not_empty():
    assert CASES, f"no golden vectors found in {GOLDEN}"


@pytest.fixture(scope="module", params=CASES, ids=[p.stem for p in CASES])
def golden(request):
    meta = json.loads(request.param.read_text())
    tensors = load_file(str(request.param.with_suffix(".safetensors")))
    cfg = FlowConfig.from_dict(meta["config"])
    model = build_model(cfg, tensors, prefix="weights.")
    return cfg, model, tensors


def test_forward(golden):
    _, model, g = golden
    with torch.no_grad():
        z, outputs, logdets = model(g["in.x"], g["in.y"])
    assert rel_err(z, g["forward.z"]) <= EXACT
    assert len(outputs) == sum(k.startswith("forward.outputs.") for k in g)
    for i, out in enumerate(outputs):
        assert rel_err(out, g[f"forward.outputs.{i}"]) <= EXACT, f"outputs.{i}"
    assert len(logdets) == sum(k.startswith("forward.logdet.") for k in g)
    for i, ld in enumerate(logdets):
        ref = g[f"forward.logdet.{i}"]
        assert rel_err(ld.flatten(1).sum(1), ref.flatten(1).sum(1)) <= EXACT, f"logdet.{i}"
    assert rel_err(model.loss(z, logdets), g["forward.loss"]) <= EXACT


def test_denoiser(golden):
    _, model, g = golden
    with torch.no_grad():
        assert rel_err(model.denoiser(g["in.x"], g["in.y"]), g["denoiser.out"]) <= EXACT


def test_reverse_sequential(golden):
    _, model, g = golden
    out = sample(model, g["in.noise"], g["in.y"], None, SamplerOptions(jacobi=False))
    assert rel_err(out, g["reverse.x"]) <= SAMPLING


def test_reverse_guided_sequential(golden):
    _, model, g = golden
    out = sample(
        model, g["in.noise"], g["in.y"], g["in.y_null"], SamplerOptions(guidance=2.5, jacobi=False)
    )
    assert rel_err(out, g["reverse_cfg.x"]) <= SAMPLING


@pytest.mark.parametrize("block_size", [8, 3, 64])
def test_reverse_guided_jacobi(golden, block_size):
    _, model, g = golden
    opts = SamplerOptions(**{**JACOBI, "block_size": block_size})
    out = sample(model, g["in.noise"], g["in.y"], g["in.y_null"], opts)
    assert rel_err(out, g["jacobi_cfg.x"]) <= SAMPLING
    assert rel_err(out, g["reverse_cfg.x"]) <= SAMPLING


def test_image_to_video(golden):
    _, model, g = golden
    first = g["in.first_frame"][:, None]
    out = sample(
        model, g["in.noise"], g["in.y"], g["in.y_null"], SamplerOptions(**JACOBI), context=first
    )
    assert rel_err(out, g["i2v.x"]) <= SAMPLING
    assert rel_err(out[:, 0], g["in.first_frame"]) <= SAMPLING


def test_long_video_sliding_window(golden):
    _, model, g = golden
    opts = SamplerOptions(**JACOBI, window=2, context=1)
    out = sample(model, g["in.noise_long"], g["in.y"], g["in.y_null"], opts)
    assert rel_err(out, g["long.x"]) <= SAMPLING
