"""The project's flow sampler against the reference's (apple/ml-starflow) on the same random model.

    python benchmarks/vs_reference.py --reference /tmp/ml-starflow     # side by side, alternating
    python benchmarks/vs_reference.py                                  # the project's figures alone
    python benchmarks/vs_reference.py --config benchmarks/7b_widths.json --size 30x52 --device cuda
    python benchmarks/vs_reference.py --breakdown                      # where the time goes

One random STARFlow-V (default: the released 7B's switches at a small size: 48 latent channels,
channels 128 / top 256, blocks of 1 1 1 6 layers, head 64, text 16 x 64) is built with
well-conditioned weights (each block's scale and shift of order 0.4). With --reference the same
state dict goes into the reference's `transformer_flow.Model` (imported from that checkout only
here; it needs einops and tqdm), and both sample the same noise and text with guidance, without
the denoiser, in alternating runs. Printed per sampler: median seconds for the clip and to its
first latent frame (the reference returns frames only at the end, so its first frame is timed
as a clip of one frame), token rows through the flow blocks (forward passes x tokens, the
guidance batch counted; rows of the project's bfloat16 draft apart), Jacobi sweeps of the top
block per frame, and the agreement with the sequential answer (relative RMS and max error).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import sampling  # noqa: E402
from engine.checkpoint import DEPRECATED, build_model  # noqa: E402
from engine.config import FlowConfig  # noqa: E402
from engine.sampling import FlowSampler, SamplerOptions  # noqa: E402

# the released 7B's switches (configs/starflow-v_7B_t2v_caus_480p.yaml) at a small size
CONFIG = dict(
    in_channels=48,
    img_size=8,
    patch_size=1,
    channels=128,
    top_block_channels=256,
    num_blocks=4,
    layers_per_block=[1, 1, 1, 6],
    head_dim=64,
    txt_size=16,
    txt_dim=64,
    pt_seq_len=32,
    soft_clip=4.0,
    sos=1,
    rope=1,
    cond_top_only=1,
    use_softplus=1,
    use_final_norm=1,
    seq_order="L2R",
    learnable_self_denoiser=1,
    conditional_denoiser=1,
    temporal_causal=2,
    shallow_block_local=1,
    denoiser_window=4,
    local_attn_window=None,
)


def random_state(shapes: dict[str, torch.Size], seed: int) -> dict[str, torch.Tensor]:
    """Well-conditioned random weights: activations of order 1, each block's scale/shift ~0.4."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        r = torch.randn(shape, generator=g)
        if "final_norm" in name:
            r = 0.1 * r  # RMSNorm with unit offset
        elif name.endswith("norm.weight"):
            r = 1 + 0.1 * r  # LayerNorm gains
        elif "proj_out" in name and len(shape) == 2:
            r = 0.4 * r / shape[1] ** 0.5
        elif len(shape) == 2:
            r = r / shape[1] ** 0.5
        elif "sos_embed" not in name:
            r = 0.05 * r
        out[name] = r
    return out


class Counter:
    """Token rows through each flow block's input projection and calls, by block and dtype."""

    def __init__(self, blocks: list[torch.nn.Module]) -> None:
        self.rows: dict[tuple[int, torch.dtype], int] = defaultdict(int)
        self.calls: dict[tuple[int, torch.dtype], int] = defaultdict(int)
        self.handles = [
            b.proj_in.register_forward_pre_hook(self._hook(i)) for i, b in enumerate(blocks)
        ]

    def add(self, block: torch.nn.Module, i: int) -> None:
        self.handles.append(block.proj_in.register_forward_pre_hook(self._hook(i)))

    def _hook(self, i: int):
        def hook(_module, args):
            self.rows[i, args[0].dtype] += args[0].size(0) * args[0].size(1)
            self.calls[i, args[0].dtype] += 1

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@dataclass
class Run:
    out: torch.Tensor
    seconds: float
    first: float | None
    sweeps: list  # top-block sweeps per latent frame
    rows: dict = field(default_factory=dict)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def project_run(model, noise, y, y_null, opts: SamplerOptions) -> Run:
    """The project's sampler over noise (B, T, C, H, W), frame by frame."""
    counter = Counter(list(model.blocks))
    top, device = len(model.blocks) - 1, noise.device
    sync(device)
    t0 = time.perf_counter()
    sampler = FlowSampler(
        model, y, y_null if opts.guidance > 0 else None, noise.shape[-2:], opts, noise.size(1)
    )
    if sampler.top.draft is not None:  # the bfloat16 copy's sweeps count for the top block
        counter.add(sampler.top.draft.block, top)
    frames, first, sweeps = [], None, []
    for t in range(noise.size(1)):
        before = dict(counter.calls)
        frames.append(sampler.next_frame(noise[:, t]))
        sync(device)
        first = first or time.perf_counter() - t0
        full, draft = (
            counter.calls[top, dt] - before.get((top, dt), 0)
            for dt in (model.top.proj_in.weight.dtype, torch.bfloat16)
        )
        sweeps.append(f"{draft}+{full}" if draft else full)
    seconds = time.perf_counter() - t0
    counter.close()
    return Run(torch.stack(frames, 1), seconds, first, sweeps, dict(counter.rows))


def load_reference(path: Path, device: torch.device):
    """`transformer_flow` from a checkout of apple/ml-starflow."""
    sys.path.insert(0, str(path))
    import transformer_flow

    if not torch.distributed.is_initialized():  # its Jacobi all-reduces its convergence flag
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(
            backend, init_method="tcp://127.0.0.1:29531", rank=0, world_size=1
        )
    transformer_flow.print = lambda *a, **k: None  # its context re-encoding prints
    return transformer_flow


def reference_run(ref_model, noise, y_cfg, guidance: float, jacobi: dict) -> Run:
    """The reference's sampler; sweeps per frame counted from the top block's cache position."""
    blocks = list(ref_model.blocks)
    counter = Counter(blocks)
    txt, starts = y_cfg.size(1), []

    def hook(_module, args, kwargs):
        if args[0] is not None:  # None: the text prefill
            starts.append((kwargs["kv_cache"].func.kv_index[0] - txt, args[0].size(1)))

    handle = blocks[-1].attn_blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    sync(noise.device)
    t0 = time.perf_counter()
    out = ref_model.reverse(noise, y_cfg, guidance=guidance, **jacobi)
    sync(noise.device)
    seconds = time.perf_counter() - t0
    handle.remove()
    counter.close()
    n = noise.size(-1) * noise.size(-2) // ref_model.patch_size**2
    sweeps = [0] * noise.size(1)
    for s, length in starts:
        for f in range(s // n, min((s + length - 1) // n + 1, noise.size(1))):
            sweeps[f] += 1
    return Run(out, seconds, None, sweeps, dict(counter.rows))


def errors(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Relative RMS and relative max error of x against ref."""
    d, r = (x.float() - ref.float()).flatten(), ref.float().flatten()
    return (d.norm() / r.norm()).item(), (d.abs().max() / r.abs().max()).item()


def load_config(path: Path | None) -> dict:
    if path is None:
        return dict(CONFIG)
    d = json.loads(path.read_text())
    return d.get("config", d)


def rows_text(rows: dict, blocks: int) -> str:
    shallow = sum(n for (i, dt), n in rows.items() if i < blocks - 1)
    top = sum(n for (i, dt), n in rows.items() if i == blocks - 1 and dt != torch.bfloat16)
    draft = sum(n for (i, dt), n in rows.items() if i == blocks - 1 and dt == torch.bfloat16)
    return f"{shallow} / {top}" + (f" + {draft} bf16" if draft else "")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reference", type=Path, help="a checkout of apple/ml-starflow")
    ap.add_argument("--config", type=Path, help="model config JSON (reference kwargs)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=8, help="latent frames")
    ap.add_argument("--size", default="6x8", help="latent HxW")
    ap.add_argument("--guidance", type=float, default=3.5)
    ap.add_argument("--block-size", type=int, default=32, help="Jacobi block of both samplers")
    ap.add_argument("--threshold", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--breakdown", action="store_true", help="where the project's default sampler spends time"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    kwargs = load_config(args.config)
    cfg = FlowConfig.from_dict(kwargs)
    model = build_model(cfg, None, device)
    state = random_state({k: v.shape for k, v in model.state_dict().items()}, args.seed)
    model.load_state_dict(state)
    g = torch.Generator().manual_seed(args.seed + 1)
    h, w = (int(s) for s in args.size.split("x"))
    noise = torch.randn(1, args.frames, cfg.in_channels, h, w, generator=g).to(device)
    y = torch.randn(1, cfg.txt_size, cfg.txt_dim, generator=g).to(device)
    y_null = torch.randn(1, cfg.txt_size, cfg.txt_dim, generator=g).to(device)
    jacobi = dict(block_size=args.block_size, max_iter=args.max_iter, threshold=args.threshold)
    project = SamplerOptions(guidance=args.guidance, **jacobi)

    runs: dict[str, Callable[[], Run]] = {
        "project (default)": lambda: project_run(model, noise, y, y_null, project),
        "project, bf16 draft": lambda: project_run(
            model, noise, y, y_null, SamplerOptions(guidance=args.guidance, draft=True, **jacobi)
        ),
        "project, fixed chunks": lambda: project_run(
            model, noise, y, y_null, SamplerOptions(guidance=args.guidance, grow=False, **jacobi)
        ),
    }
    with torch.no_grad():
        sequential = project_run(
            model, noise, y, y_null, SamplerOptions(guidance=args.guidance, jacobi=False)
        )
    print(
        f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
        f"{args.frames} latent frames of {h}x{w}, guidance {args.guidance}, {device}, "
        f"{args.threads} thread(s); Jacobi block {args.block_size}, threshold {args.threshold}, "
        f"max {args.max_iter} sweeps; project sequential {sequential.seconds:.3f} s"
    )
    if args.reference:
        tf = load_reference(args.reference, device)
        ref_model = tf.Model(**kwargs).to(device).eval()
        missing, unexpected = ref_model.load_state_dict(state, strict=False)
        if unexpected or not all(DEPRECATED.match(k) for k in missing):
            raise SystemExit(f"state dicts differ: {missing} {unexpected}")
        y_cfg = torch.cat([y, y_null])
        ref_kw = dict(
            jacobi=True,
            jacobi_block_size=args.block_size,
            jacobi_max_iter=args.max_iter,
            jacobi_th=args.threshold,
        )
        with torch.no_grad():
            ref_seq = ref_model.reverse(noise, y_cfg, guidance=args.guidance)
        rms, mx = errors(ref_seq, sequential.out)
        print(f"reference sequential vs project sequential: rel RMS {rms:.1e}, rel max {mx:.1e}")
        runs["reference Jacobi"] = lambda: reference_run(
            ref_model, noise, y_cfg, args.guidance, ref_kw
        )
        runs["reference, 1-frame clip"] = lambda: reference_run(
            ref_model, noise[:, :1], y_cfg, args.guidance, ref_kw
        )
    results: dict[str, list[Run]] = defaultdict(list)
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, fn in runs.items():
                results[name].append(fn())
    report(results, sequential, len(model.blocks), model.top, args)
    if args.breakdown:
        with torch.no_grad():
            breakdown(model, noise, y, y_null, project)


def report(results: dict, sequential: Run, blocks: int, top, args) -> None:
    medians = {name: statistics.median(r.seconds for r in rs) for name, rs in results.items()}
    print(
        f"\n| sampler | clip s | first frame s | rows shallow / top | top sweeps per frame"
        f"{' (bf16+own)' if any('+' in str(s) for r in results.values() for s in r[-1].sweeps) else ''} "
        f"| rel RMS | rel max |\n|---|---|---|---|---|---|---|"
    )
    for name, rs in results.items():
        last = rs[-1]
        sweeps = " ".join(str(s) for s in last.sweeps)
        first = statistics.median(r.first for r in rs) if last.first else medians[name]
        rms, mx = errors(last.out, sequential.out[:, : last.out.size(1)])
        print(
            f"| {name} | {medians[name]:.3f} | {first:.3f} | {rows_text(last.rows, blocks)} "
            f"| {sweeps} | {rms:.2e} | {mx:.2e} |"
        )
    if "reference Jacobi" in medians:
        ref, ref1 = medians["reference Jacobi"], medians["reference, 1-frame clip"]
        mine = medians["project (default)"]
        first = statistics.median(r.first for r in results["project (default)"])
        print(
            f"\nproject vs reference: clip {ref / mine:.2f}x faster; first frame "
            f"{ref1 / first:.2f}x sooner than the reference's 1-frame clip, "
            f"{ref / first:.2f}x sooner than its first frame in the clip"
        )


MATRIX_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm")


def breakdown(model, noise, y, y_null, opts: SamplerOptions) -> None:
    """Where the default sampler's time goes: by block and frame (timed around the top block's
    `next` and the shallow blocks' inversion), by kind of operation (torch.profiler's self times:
    its own overhead inflates small operations), one top-block sweep with and without the
    guidance batch, and the top block's Jacobi convergence (relative squared change per sweep)."""
    parts: dict[tuple[str, str], float] = defaultdict(float)  # (block, "first" or "later")
    frame = [0]
    changes: list[tuple[int, int, float]] = []  # (frame, sweep, change) of the top block
    top_next, shallow, sweep = (
        sampling.TopSampler.next,
        sampling.shallow_reverse,
        sampling.Jacobi.sweep,
    )
    device = noise.device

    def timed(name, fn):
        def run(*a, **k):
            sync(device)
            t = time.perf_counter()
            out = fn(*a, **k)
            sync(device)
            parts[name, "first" if frame[0] == 0 else "later"] += time.perf_counter() - t
            return out

        return run

    def traced(self, block, rope, lo):
        change = sweep(self, block, rope, lo)
        if self.block is model.top:
            changes.append((frame[0], lo - self.s, float(change)))
        return change

    sampling.TopSampler.next = timed("top block", top_next)
    sampling.shallow_reverse = timed("shallow blocks", shallow)
    sampling.Jacobi.sweep = traced
    try:
        sampler = FlowSampler(model, y, y_null, noise.shape[-2:], opts, noise.size(1))
        t0 = time.perf_counter()
        for t in range(noise.size(1)):
            frame[0] = t
            sampler.next_frame(noise[:, t])
        total = time.perf_counter() - t0
    finally:
        sampling.TopSampler.next, sampling.shallow_reverse = top_next, shallow
        sampling.Jacobi.sweep = sweep
    print(f"\nwhere the default sampler's {total:.3f} s go (one run, no profiler):")
    for name in ("top block", "shallow blocks"):
        first, later = parts[name, "first"], parts[name, "later"]
        print(
            f"  {name}: first frame {first:.3f} s, later frames {later:.3f} s "
            f"({later / max(noise.size(1) - 1, 1) * 1e3:.1f} ms each)"
        )
    rest = total - sum(parts.values())
    print(f"  between blocks (patchify, permutes, noise): {rest:.3f} s")

    from torch.profiler import profile

    with profile() as prof:
        sampler = FlowSampler(model, y, y_null, noise.shape[-2:], opts, noise.size(1))
        for t in range(noise.size(1)):
            sampler.next_frame(noise[:, t])
    kinds: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        if e.key.startswith("aten::") and e.self_cpu_time_total > 0:
            if e.key in MATRIX_OPS:
                kind = "matrix products"
            elif "scaled_dot_product" in e.key:
                kind = "attention"
            elif e.key in ("aten::copy_", "aten::cat", "aten::clone", "aten::index_put_"):
                kind = "copies (cache writes, concatenation)"
            else:
                kind = "other operations (norms, GELU, rotation, Jacobi updates and tests)"
            kinds[kind] += e.self_cpu_time_total
    whole = sum(kinds.values())
    print("by operation (profiler self time, share):")
    for kind, us in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind}: {us / whole:.0%}")

    later = [c for c in changes if c[0] > 0]
    firsts = [c for f, k, c in later if k == 0]
    ratios = [
        c / prev
        for (f0, k0, prev), (f1, k1, c) in zip(later, later[1:], strict=False)
        if f0 == f1 and k1 == k0 + 1 and prev > 0
    ]
    if firsts and ratios:
        print(
            f"top block, later frames: first sweep's change {statistics.median(firsts):.2e} "
            f"(the warm start's error), each sweep's change / the last "
            f"{statistics.median(ratios):.2f} (median): "
            f"{len(later) / max(noise.size(1) - 1, 1):.1f} sweeps per frame to {opts.threshold:g}"
        )
    guidance_batch(model, y, y_null, noise.shape[-2:], device)


def guidance_batch(model, y, y_null, hw, device) -> None:
    """One top-block sweep of a whole frame after two frames of context, with the guidance
    batch (2 rows per token) and without (1)."""
    top = model.top
    p = model.cfg.patch_size
    n = hw[0] * hw[1] // p**2
    dtype = top.proj_in.weight.dtype
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3 * n, top.proj_in.in_features, generator=g).to(device, dtype)
    times = {}
    for name, text in (("with guidance", torch.cat([y, y_null])), ("without", y)):
        b = text.size(0)
        rope = top.rope(hw[0] // p, hw[1] // p, 3, text.size(1), dtype, device)
        cache = top.new_cache(b, text.size(1) + 3 * n, device, dtype)
        top.prefill_text(text, cache, rope)
        top.step(x[:b, : 2 * n], cache, rope)
        cache.commit(2 * n)
        runs = []
        for _ in range(12):
            sync(device)
            t = time.perf_counter()
            top.step(x[:b, 2 * n :], cache, rope)
            sync(device)
            runs.append(time.perf_counter() - t)
        times[name] = statistics.median(runs[2:])
    print(
        f"one top-block sweep of a frame: {times['with guidance'] * 1e3:.2f} ms with the guidance "
        f"batch, {times['without'] * 1e3:.2f} ms without "
        f"({times['with guidance'] / times['without']:.2f}x)"
    )


if __name__ == "__main__":
    main()
