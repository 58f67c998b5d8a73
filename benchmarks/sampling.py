"""Sampling speed and memory: sequential vs Jacobi, frames per second, time to first frame.

    python benchmarks/sampling.py                       # mini configuration on the CPU
    python benchmarks/sampling.py --config golden:mini_video_b_seed3 --frames 8
    python benchmarks/sampling.py --config 7b --device cuda --dtype bf16 --frames 21 --size 30x52

Every figure is also printed as a ratio against the sequential baseline measured in the same run.
The 7B configuration uses random weights (scaled so the flow is not the identity).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoint import build_model  # noqa: E402
from engine.config import FlowConfig  # noqa: E402
from engine.sampling import SamplerOptions  # noqa: E402
from engine.session import NoiseSource, Session  # noqa: E402

MINI = dict(
    in_channels=4,
    img_size=8,
    patch_size=1,
    channels=64,
    top_block_channels=96,
    num_blocks=3,
    layers_per_block=(1, 1, 2),
    txt_size=6,
    txt_dim=24,
    head_dim=32,
    pt_seq_len=4,
    soft_clip=4.0,
    temporal_causal=2,
    denoiser_window=2,
)
MANIFEST = ROOT.parent / "shared" / "reference" / "starflow-v_7B_manifest.json"


def load_config(name: str) -> FlowConfig:
    if name == "mini":
        return FlowConfig(**MINI)
    if name == "7b":
        path = (
            MANIFEST
            if MANIFEST.exists()
            else ROOT / "engine" / "starflow_v" / "starflow-v_7B_manifest.json"
        )
        return FlowConfig.from_dict(json.loads(path.read_text())["config"])
    if name.startswith("golden:"):
        return FlowConfig.from_json(ROOT.parent / "shared" / "golden" / f"{name[7:]}.json")
    return FlowConfig.from_json(name)


def randomise(model: torch.nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(std=0.5 / p.size(-1) ** 0.5)
            elif "norm" in name and "weight" in name:
                p.zero_()
            else:
                p.normal_(std=0.02)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(
    model, opts: SamplerOptions, frames: int, hw, device, txt, denoise=True
) -> tuple[float, float]:
    """Seconds to the first frame and for all `frames` latent frames (incl. denoising)."""
    y, y_null = txt
    session = Session(model, opts, denoise=denoise)
    session.set_prompt(y, y_null if opts.guidance > 0 else None)
    c = model.cfg.in_channels
    sync(device)
    t0 = time.perf_counter()
    first = None
    for _ in session.frames(frames, NoiseSource(0, (1, c, *hw), device), latent_hw=hw):
        if first is None:
            sync(device)
            first = time.perf_counter() - t0
    sync(device)
    return first, time.perf_counter() - t0


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", default="mini")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--frames", type=int, default=6, help="latent frames")
    ap.add_argument("--size", default=None, help="latent HxW (default: img_size x img_size)")
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--threshold", type=float, default=1e-3)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument(
        "--no-denoise",
        action="store_true",
        help="time raw frames (the denoiser delays frame t until t + lookahead exists)",
    )
    args = ap.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    cfg = load_config(args.config)
    hw = tuple(int(s) for s in args.size.split("x")) if args.size else (cfg.img_size, cfg.img_size)
    model = build_model(cfg, None, device, dtype)
    randomise(model, 0)
    y = torch.randn(1, cfg.txt_size, cfg.txt_dim, device=device, dtype=dtype)
    txt = (y, torch.randn_like(y))
    params = sum(p.numel() for p in model.parameters())
    print(
        f"config {args.config}: {params / 1e6:.1f}M parameters, latent {hw[0]}x{hw[1]}, "
        f"{args.frames} latent frames, {device} {args.dtype}, guidance {args.guidance}, "
        f"denoiser {'on' if not args.no_denoise else 'off'}"
    )
    jac = SamplerOptions(
        guidance=args.guidance,
        jacobi=True,
        block_size=args.block_size,
        max_iter=64,
        threshold=args.threshold,
        window=args.window,
    )
    seq = SamplerOptions(guidance=args.guidance, jacobi=False, window=args.window)
    dn = not args.no_denoise
    rows = []
    if not args.skip_sequential:
        rows.append(("sequential", *run(model, seq, args.frames, hw, device, txt, dn)))
    rows.append(("jacobi", *run(model, jac, args.frames, hw, device, txt, dn)))
    half = max(1, args.frames // 2)
    rows.append((f"jacobi, {half} frames", *run(model, jac, half, hw, device, txt, dn)))
    base = rows[0][2]
    print(
        f"{'sampler':<22}{'first frame s':>14}{'total s':>10}{'frames/s':>10}{'vs first row':>14}"
    )
    for name, first, total in rows:
        n = half if "," in name else args.frames
        print(
            f"{name:<22}{first:>14.3f}{total:>10.3f}{n / total:>10.2f}{base / total * n / args.frames:>13.2f}x"
        )
    print(f"peak memory: {peak_memory(device)}")


if __name__ == "__main__":
    main()
