"""GPU memory plan for the released 7B model, from its configuration (no GPU needed).

    python benchmarks/memory_plan.py [--frames 81] [--aspect 16:9]

Counts what each setting keeps on the GPU: flow weights (bf16), the deep block's KV cache
(bf16, guidance doubles the batch), the Wan2.2 VAE, and the text encoder (it leaves the GPU
after encoding). The reference keeps its KV cache in fp32; its figure is printed as the baseline.
Activations of one Jacobi chunk are small next to these and are not counted; measured peaks
(benchmarks/sampling.py --config 7b on a GPU) belong beside these estimates.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoint import expected_manifest  # noqa: E402
from engine.config import FlowConfig  # noqa: E402
from engine.starflow_v.sizes import frame_size, latent_frames  # noqa: E402

GIB = 2**30
VAE_PARAMS = 0.7e9  # Wan2.2 TI2V-5B VAE, about 700M parameters
T5_XL_ENCODER_PARAMS = 1.2e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--aspect", default="16:9")
    args = ap.parse_args()
    manifest = json.loads(
        (ROOT / "engine" / "starflow_v" / "starflow-v_7B_manifest.json").read_text()
    )
    cfg = FlowConfig.from_dict(manifest["config"])
    numel = {k: math.prod(s) for k, s in expected_manifest(cfg).items()}
    top = sum(v for k, v in numel.items() if k.startswith(f"blocks.{cfg.num_blocks - 1}."))
    rest = (
        sum(v for k, v in numel.items() if k.startswith(("blocks.", "learnable_self_denoiser.")))
        - top
    )
    h, w = frame_size(args.aspect)
    t = latent_frames(args.frames)
    tokens_per_frame = (h // 16) * (w // 16)
    layers = cfg.layers_per_block[-1]
    per_token = layers * 2 * 2 * cfg.top_channels  # layers x (k, v) x guidance batch x channels

    def cache(frames: int, bytes_per: int) -> float:
        return per_token * (cfg.txt_size + frames * tokens_per_frame) * bytes_per / GIB

    vae = VAE_PARAMS * 2 / GIB
    print(
        f"{args.frames} frames at {w}x{h} -> {t} latent frames of {tokens_per_frame} tokens; "
        f"deep block {top / 1e9:.2f}B, shallow+denoiser {rest / 1e9:.2f}B parameters"
    )
    rows = [
        ("reference (fp32 KV cache)", (top + rest) * 2 / GIB, cache(t, 4)),
        ("ours: bf16 weights + bf16 KV cache", (top + rest) * 2 / GIB, cache(t, 2)),
        ("ours + --offload", top * 2 / GIB, cache(t, 2)),
        ("ours + --offload --window 6", top * 2 / GIB, cache(6, 2)),
        ("ours + --offload --window 4", top * 2 / GIB, cache(4, 2)),
    ]
    base = rows[0][1] + rows[0][2] + vae
    print(
        f"{'setting':<38}{'weights':>9}{'KV cache':>10}{'VAE':>6}{'total GiB':>11}{'vs reference':>14}"
    )
    for name, weights, kv in rows:
        total = weights + kv + vae
        print(
            f"{name:<38}{weights:>9.1f}{kv:>10.1f}{vae:>6.1f}{total:>11.1f}{total / base:>13.2f}x"
        )
    print(
        f"text encoder (flan-t5-xl, bf16) visits the GPU only while encoding: "
        f"{T5_XL_ENCODER_PARAMS * 2 / GIB:.1f} GiB, then leaves"
    )


if __name__ == "__main__":
    main()
