"""The released 7B's path on one GPU with random bf16 weights: for each memory preset that fits the
card, a clip made through the real pipeline (T5 encoder, flow, denoiser, Wan2.2 VAE), with its
peak GPU memory, seconds per clip and first-frame latency.

    bash scripts/gpu_7b_check.sh                          # on the GPU machine
    python benchmarks/gpu_7b_check.py --tiny --device cpu  # the same code path, small, on a CPU

Random weights do not converge the way trained ones do: Jacobi runs to its iteration limit, so
the times are upper bounds. The flow is built in bf16 on the device it runs from, so no 7B state
dict is ever held twice.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.api import GenerateRequest  # noqa: E402
from engine.config import FlowConfig  # noqa: E402
from engine.model import StarFlow  # noqa: E402
from engine.offload import enable_offload  # noqa: E402
from engine.starflow_v.hub import MANIFEST_PATH  # noqa: E402
from engine.starflow_v.loader import LargeOptions, assemble  # noqa: E402
from engine.starflow_v.memory import T5_XL, host_rotaries, word_tokenizer  # noqa: E402

GIB = 2**30
# the presets of app/state/engine_presets.py: card GB -> (offload, window, VAE on the CPU)
PRESETS = {
    "80": (False, None, False),
    "48": (True, None, False),
    "24": (True, 6, False),
    "16": (True, 3, True),
}
TINY_FLOW = dict(
    txt_dim=32,
    channels=64,
    top_block_channels=64,
    layers_per_block=[1] * 6,
    num_blocks=6,
    denoiser_layers=1,
    img_size=64,
)
TINY_VAE = dict(base_dim=8, decoder_base_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1)
TINY_T5 = dict(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)


def random_flow(cfg: FlowConfig, device: torch.device, dtype: torch.dtype) -> StarFlow:
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its own dtype on its own device: no second copy
    try:
        with torch.device(device):
            flow = StarFlow(cfg)
    finally:
        torch.set_default_dtype(default)
    host_rotaries(flow)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    return flow.eval().requires_grad_(False)


def build(args, preset: str, device: torch.device, dtype: torch.dtype):
    import diffusers
    import transformers

    from engine.starflow_v.text import T5TextEncoder
    from engine.starflow_v.vae import WanCodec
    from engine.starflow_v.wan_vae import WAN22_CONFIG

    offload, window, vae_on_cpu = PRESETS[preset]
    cfg = FlowConfig.from_dict(json.loads(MANIFEST_PATH.read_text())["config"])
    if args.tiny:
        cfg = cfg.replace(**TINY_FLOW)
    flow = random_flow(cfg, torch.device("cpu") if offload else device, dtype)
    if offload:
        enable_offload(flow, device)
    t5 = transformers.T5Config(**{**T5_XL, **(TINY_T5 if args.tiny else {})})
    text = T5TextEncoder.from_config(
        t5, word_tokenizer(), device=device, offload_after_use=device.type == "cuda"
    )
    text.model.to(dtype)
    vae = diffusers.AutoencoderKLWan.from_config(
        {**WAN22_CONFIG, **(TINY_VAE if args.tiny else {})}
    )
    codec = WanCodec(vae.to("cpu", torch.float32) if vae_on_cpu else vae.to(device, dtype))
    side = cfg.img_size * codec.spatial_factor // 16 if args.tiny else 640
    options = LargeOptions(offload=offload, window=window, side=side, aspect_ratio=args.aspect)
    return assemble(flow, codec, text, options)


def run_preset(args, preset: str, device: torch.device, dtype: torch.dtype) -> dict:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    pipeline = build(args, preset, device, dtype)
    loaded = time.perf_counter() - t0
    request = GenerateRequest(
        prompt="a red fox runs through snow", frames=args.frames, seed=0, guidance=args.guidance
    )
    first = None
    t0 = time.perf_counter()
    frames = 0
    for event in pipeline.generate(request):
        first = first if first is not None else time.perf_counter() - t0
        frames = event.done
    total = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else float("nan")
    size = f"{pipeline.info.width}x{pipeline.info.height}"
    del pipeline
    gc.collect()
    return dict(
        preset=preset,
        size=size,
        frames=frames,
        load_s=loaded,
        first_s=first,
        clip_s=total,
        peak_gib=peak,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda or cpu")
    ap.add_argument(
        "--presets", default="auto", help="comma list of 80,48,24,16 or auto (all that fit)"
    )
    ap.add_argument("--frames", type=int, default=81, help="video frames per clip (5 s at 16 fps)")
    ap.add_argument("--guidance", type=float, default=3.5, help="classifier-free guidance")
    ap.add_argument("--aspect", default="16:9", help="aspect ratio")
    ap.add_argument("--tiny", action="store_true", help="small random parts (a CPU smoke run)")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    card = torch.cuda.get_device_properties(device) if device.type == "cuda" else None
    if args.presets == "auto":
        gib = card.total_memory / GIB if card else 80
        names = [p for p in PRESETS if int(p) <= gib * 1.05]
    else:
        names = args.presets.split(",")
    print(
        f"device: {card.name if card else 'cpu'}, {card.total_memory / GIB if card else 0:.0f} GiB"
    )
    print("| preset | frame | frames | load s | first frame s | clip s | peak GiB |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        try:
            r = run_preset(args, name, device, dtype)
        except torch.cuda.OutOfMemoryError:
            print(f"| {name} GB | - | - | - | - | - | out of memory |")
            continue
        print(
            f"| {r['preset']} GB | {r['size']} | {r['frames']} | {r['load_s']:.1f} | "
            f"{r['first_s']:.1f} | {r['clip_s']:.1f} | {r['peak_gib']:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
