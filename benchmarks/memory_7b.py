"""Peak GPU memory of the released 7B by part, measured without a GPU: the real pipeline on the
meta device at its true sizes (engine.starflow_v.memory), one 5-second clip per memory preset.

    python benchmarks/memory_7b.py [--frames 81] [--aspect 16:9] [--guidance 3.5]

Each row takes a minute or two on a CPU. The CUDA context (about 0.5 GiB) and the caching
allocator's slack come on top of the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.starflow_v.loader import LargeOptions  # noqa: E402
from engine.starflow_v.memory import GIB, measure  # noqa: E402

ROWS = (  # name, offload, window, VAE on the CPU, dtype
    ("reference settings (fp32)", False, None, False, torch.float32),
    ("80 GB preset (bf16)", False, None, False, torch.bfloat16),
    ("48 GB preset: offload", True, None, False, torch.bfloat16),
    ("24 GB preset: offload, window 6", True, 6, False, torch.bfloat16),
    ("16 GB preset: offload, window 3, VAE on the CPU", True, 3, True, torch.bfloat16),
)
PARTS = ("flow weights", "vae weights", "kv cache", "sampling", "denoiser", "vae", "text encoder")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=81, help="video frames of the clip")
    ap.add_argument("--aspect", default="16:9", help="aspect ratio")
    ap.add_argument("--guidance", type=float, default=3.5, help="classifier-free guidance")
    args = ap.parse_args()
    print(f"| setting | peak GiB | {' | '.join(PARTS)} (GiB at the peak) |")
    print("|---|---|" + "---|" * len(PARTS))
    for name, offload, window, vae_on_cpu, dtype in ROWS:
        options = LargeOptions(
            offload=offload, window=window, vae_on_cpu=vae_on_cpu, aspect_ratio=args.aspect
        )
        r = measure(options, frames=args.frames, guidance=args.guidance, dtype=dtype)
        parts = " | ".join(f"{r.at_peak.get(p, 0) / GIB:.1f}" for p in PARTS)
        print(f"| {name} | {r.peak / GIB:.1f} | {parts} |", flush=True)


if __name__ == "__main__":
    main()
