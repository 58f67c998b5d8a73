"""Demo-model training speed: rendering the data against training on it, without and with workers.

    python benchmarks/training.py                                  # the shipped demo model, CPU
    python benchmarks/training.py --device cuda --batch 128 --workers 12 --autocast bf16

It times, on the shipped model's configuration (warm-started from resources/models):
  render     one core rendering each step's clips (engine.demo.data.step_data), alone;
  train      optimiser steps with the data rendered in the training process (the baseline);
  workers    the same steps with --workers processes rendering the coming steps meanwhile.
Each figure is steps/s and clips/s, and the speed-up against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.demo.bundle import split_state  # noqa: E402
from engine.demo.bundle_write import build_codec, init_source  # noqa: E402
from engine.demo.data import step_data  # noqa: E402
from engine.demo.train.config import TrainConfig  # noqa: E402
from engine.demo.train.flow import FlowTrainer  # noqa: E402

BUNDLE = ROOT / "resources" / "models" / "shapes_demo.json"


def trainer(args: argparse.Namespace) -> FlowTrainer:
    meta, state = init_source(BUNDLE)
    meta.pop("training", None)
    codec = build_codec(meta["codec"], split_state(state, "codec."), torch.device(args.device))
    train_cfg = TrainConfig(
        steps=10**6, batch=args.batch, autocast=args.autocast, warmup=1, lr=1e-5
    )
    t = FlowTrainer(meta, train_cfg, codec, args.device)
    t.load_weights(state)
    return t


def timed_steps(t: FlowTrainer, steps: int, workers: int, warmup: int) -> float:
    """Steps per second over `steps` steps after `warmup` untimed ones. With workers, the pool's
    start (paid once per run) is not timed: the clock starts when its first step is rendered."""
    t.train(t.step + warmup)
    until, taken = t.step + steps, t.prefetched
    with contextlib.ExitStack() as stack:
        if workers:
            stack.enter_context(t.prefetching(until, workers)).pending[0][1].wait()
        sync(t)
        start = time.perf_counter()
        t.train(until, log_every=10**9)
        sync(t)
        elapsed = time.perf_counter() - start
    if workers and t.prefetched - taken < steps:
        raise RuntimeError(f"only {t.prefetched - taken} of {steps} steps came from the workers")
    return steps / elapsed


def sync(t: FlowTrainer) -> None:
    if t.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--autocast", choices=("none", "bf16"), default="none")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    for step in range(args.steps):
        step_data(step, 0, args.batch, 0.1)
    render = args.steps / (time.perf_counter() - start)
    t = trainer(args)
    base = timed_steps(t, args.steps, 0, args.warmup)
    helped = timed_steps(t, args.steps, args.workers, 0)
    print(f"device {args.device}, batch {args.batch}, autocast {args.autocast}, {args.steps} steps")
    print("| what | steps/s | clips/s | vs train |")
    print("|---|---|---|---|")
    for name, rate in (
        ("render (one core)", render),
        ("train", base),
        (f"train, {args.workers} workers", helped),
    ):
        print(f"| {name} | {rate:.2f} | {rate * args.batch:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
