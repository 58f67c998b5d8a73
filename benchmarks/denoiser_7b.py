"""Denoiser call and long-clip step at the released 7B's widths (one layer per block, random
weights), before and after the block-causal pattern cache and the reference's long-clip context.

    python benchmarks/denoiser_7b.py                 # CPU, small latent frames (a few minutes)
    python benchmarks/denoiser_7b.py --device cuda --dtype bf16 --size 30x53

Three figures, each as before / after and their ratio, measured in the same run:
- mask: building the (S, S) block-causal mask on the CPU as every denoiser call did, against the
  pattern the denoiser builds once per length (frame spans above 8192 tokens), at the true
  S = 256 text + 21 latent frames of 30x53 tokens = 33,646 (480p, 81 frames), whatever --size is;
- denoiser call: 21 latent frames of --size, the mask rebuilt and copied per call (before), the
  cached mask and the mask-free frame spans (after);
- long-clip step: seconds per new latent frame once the 21-frame window is full, re-encoding the
  last 20 frames for every new frame (before) or 16 frames every 5 (after, the reference's
  context_length). Jacobi runs a fixed number of sweeps so both do the same sampling work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import FlowConfig  # noqa: E402
from engine.model import StarFlow  # noqa: E402
from engine.model import denoiser as den  # noqa: E402
from engine.sampling import FlowSampler, SamplerOptions  # noqa: E402

MANIFEST = ROOT.parent / "shared" / "reference" / "starflow-v_7B_manifest.json"
WINDOW, TRUE_HW = 21, (30, 53)  # latent frames of an 81-frame clip; 480x848 / 16


def reduced_7b(h: int, w: int) -> FlowConfig:
    """The 7B's widths, heads, text and denoiser settings; one layer per block."""
    path = MANIFEST if MANIFEST.exists() else ROOT / "engine" / "starflow_v" / MANIFEST.name
    cfg = FlowConfig.from_dict(json.loads(path.read_text())["config"])
    return cfg.replace(
        layers_per_block=(1,) * cfg.num_blocks, denoiser_layers=1, img_size=max(h, w)
    )


def timed(fn, repeat: int, device: torch.device) -> float:
    """Best of `repeat` wall times (seconds) after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def report(name: str, before: float, after: float) -> None:
    ratio = f"x{before / after:.1f}" if after > 1e-4 else "(after: a cache look-up)"
    print(f"{name:<44} before {before:9.4f} s   after {after:9.4f} s   {ratio}")


def mask_cost(model: StarFlow, device: torch.device) -> None:
    cfg, d = model.cfg, model.learnable_self_denoiser
    tpf = TRUE_HW[0] * TRUE_HW[1]
    args = (WINDOW, tpf, cfg.txt_size, cfg.temporal_causal, cfg.denoiser_window)

    def old() -> None:  # every call: built on the CPU, copied to the device
        den.frame_window_mask(*args).to(device)

    t_old = timed(old, 1, device)
    t0 = time.perf_counter()
    d.attention_pattern(WINDOW, tpf, cfg.txt_size, device)
    t_first = time.perf_counter() - t0
    t_next = timed(lambda: d.attention_pattern(WINDOW, tpf, cfg.txt_size, device), 3, device)
    d._attention = None
    s = cfg.txt_size + WINDOW * tpf
    print(f"S = {s} tokens: the old mask is {s * s / 2**30:.2f} GiB of bool per call")
    report("mask: first call of a length", t_old, t_first)
    report("mask: later calls", t_old, t_next)


def denoiser_call(model: StarFlow, hw: tuple[int, int], device, dtype, repeat: int) -> None:
    cfg = model.cfg
    x = torch.randn(1, WINDOW, cfg.in_channels, *hw, device=device)
    y = torch.randn(1, cfg.txt_size, cfg.txt_dim, device=device, dtype=dtype)
    d = model.learnable_self_denoiser

    def old() -> None:  # the pattern rebuilt every call, as before
        d._attention = None
        model.denoiser(x, y)

    with torch.no_grad():
        t_old = timed(old, repeat, device)
        t_mask = timed(lambda: model.denoiser(x, y), repeat, device)
        limit, den.MASK_MAX_TOKENS = den.MASK_MAX_TOKENS, 0
        d._attention = None
        t_spans = timed(lambda: model.denoiser(x, y), repeat, device)
        den.MASK_MAX_TOKENS, d._attention = limit, None
    s = cfg.txt_size + WINDOW * hw[0] * hw[1]
    report(f"denoiser call, S = {s}: cached mask", t_old, t_mask)
    report(f"denoiser call, S = {s}: frame spans", t_old, t_spans)


def long_clip_step(model: StarFlow, hw, device, dtype, frames: int, sweeps: int) -> None:
    cfg = model.cfg
    y = torch.randn(1, cfg.txt_size, cfg.txt_dim, device=device, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    start = torch.randn(1, WINDOW, cfg.in_channels, *hw, generator=g).to(device)
    noise = [torch.randn(1, cfg.in_channels, *hw, generator=g).to(device) for _ in range(frames)]
    per_frame = {}
    for name, context in (("before", WINDOW - 1), ("after", 16)):
        opts = SamplerOptions(
            guidance=2.5, block_size=64, max_iter=sweeps, threshold=0.0, window=WINDOW
        )
        sampler = FlowSampler(model, y, y, hw, replace(opts, context=context), WINDOW + frames)
        with torch.no_grad():
            sampler.prefill(start)  # a full window: each new frame slides it
            t0 = time.perf_counter()
            for z in noise:
                sampler.next_frame(z)
            if device.type == "cuda":
                torch.cuda.synchronize()
        per_frame[name] = (time.perf_counter() - t0) / frames
    report(f"long-clip step ({frames} frames, per frame)", per_frame["before"], per_frame["after"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--size", default="4x6", help="latent frame size HxW (the 7B: 30x53)")
    ap.add_argument("--frames", type=int, default=5, help="long-clip frames timed (5: one cycle)")
    ap.add_argument("--sweeps", type=int, default=2, help="Jacobi sweeps per chunk")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    hw = tuple(int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    cfg = reduced_7b(*hw)
    model = StarFlow(cfg).eval().requires_grad_(False)
    for p in model.parameters():
        if p.dim() >= 2:
            torch.nn.init.normal_(p, std=0.5 / p.size(-1) ** 0.5)
    model.to(device, dtype)
    print(f"7B widths ({cfg.channels}/{cfg.top_channels}), one layer per block, {device} {dtype}")
    mask_cost(model, device)
    denoiser_call(model, hw, device, dtype, args.repeat)
    long_clip_step(model, hw, device, dtype, args.frames, args.sweeps)


if __name__ == "__main__":
    main()
