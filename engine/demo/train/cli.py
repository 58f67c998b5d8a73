"""Train the built-in Shapes-world demo model: the codec first, then flow + text encoder + denoiser.

    python -m engine.demo.train train --out runs/demo --steps 6000 [--resume | --init B.json]
    python -m engine.demo.train finetune-decoder --out runs/demo --steps 500 [--input denoised]
    python -m engine.demo.train export runs/demo --out resources/models [--temperature 0.5]
    python -m engine.demo.train average a/shapes_demo.json b/shapes_demo.json --out runs/avg

train: stage 1 (skipped when OUT/codec.safetensors exists, or with --codec PATH) trains the
per-frame autoencoder (engine.demo.train.codec); stage 2 the flow, text encoder and denoiser
(engine.demo.train.flow). OUT holds the bundle (shapes_demo.safetensors + shapes_demo.json),
the codec and train_state.pt (optimisers, step). Bad input exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from engine.api import EngineError
from engine.demo.pipeline import V2V_NULLS

from .commands import average, export, finetune, train
from .config import TrainConfig

log = logging.getLogger(__name__)


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """Where a training command works, on what, and its seed and latent noise."""
    ap.add_argument("--out", required=True, type=Path, help="run directory")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data, noise and weights")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument(
        "--noise-std",
        type=float,
        default=TrainConfig.noise_std,
        help="latent noise of the flow's training",
    )


def add_codec_options(ap: argparse.ArgumentParser) -> None:
    """The codec's training (stage 1, when OUT has no codec) and the decoder's loss."""
    ap.add_argument("--codec", type=Path, help="a trained codec .safetensors (skips stage 1)")
    ap.add_argument(
        "--codec-steps", type=int, default=TrainConfig.codec_steps, help="stage 1 training steps"
    )
    ap.add_argument("--codec-channels", type=int, default=8, help="stage 1: latent channels")
    ap.add_argument(
        "--codec-noise",
        type=float,
        default=TrainConfig.codec_noise,
        help="the decoder learns latents with noise up to this added",
    )
    ap.add_argument(
        "--codec-lr",
        type=float,
        default=TrainConfig.codec_lr,
        help="the codec's peak learning rate",
    )
    ap.add_argument(
        "--object-weight",
        type=float,
        default=TrainConfig.codec_object_weight,
        help="the decoder's loss counts pixels on and near objects 1 + this (0: plain MSE)",
    )
    ap.add_argument(
        "--codec-eval-frames",
        type=int,
        default=TrainConfig.codec_eval_frames,
        help="frames for the latent statistics (a quarter: the held-out PSNR)",
    )


def add_schedule_options(ap: argparse.ArgumentParser) -> None:
    """The flow's steps, batch, learning-rate schedule and precision."""
    ap.add_argument("--steps", type=int, default=TrainConfig.steps, help="flow training steps")
    ap.add_argument("--batch", type=int, default=TrainConfig.batch, help="clips per step")
    ap.add_argument("--lr", type=float, default=TrainConfig.lr, help="peak learning rate")
    ap.add_argument("--min-lr", type=float, default=TrainConfig.min_lr, help="cosine floor")
    ap.add_argument("--warmup", type=int, default=TrainConfig.warmup, help="warm-up steps")
    ap.add_argument(
        "--autocast",
        choices=("none", "bf16"),
        default="none",
        help="bf16: matrix products in bfloat16 (warns where slower); weights stay float32",
    )
    ap.add_argument(
        "--flow",
        type=json.loads,
        default={},
        help="FlowConfig overrides as JSON, e.g. '{\"top_block_channels\": 192}'",
    )


def add_data_options(ap: argparse.ArgumentParser) -> None:
    """What each step's clips and texts are, and the moving average kept of the weights."""
    ap.add_argument(
        "--two-objects",
        type=float,
        metavar="P",
        help="chance that a training scene holds two objects (default: the world's own draw)",
    )
    ap.add_argument(
        "--drop-to-task",
        type=float,
        default=0.0,
        metavar="P",
        help="chance a dropped caption with a task prefix keeps the prefix (export --v2v-null task)",
    )
    ap.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="the bundle holds a moving average of the weights with this decay per step",
    )


def add_session_options(ap: argparse.ArgumentParser) -> None:
    """How a run starts, renders its data, saves and stops."""
    ap.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    ap.add_argument(
        "--init",
        type=Path,
        help="a bundle's JSON: a new run in OUT starts from its weights, with fresh optimisers",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes rendering the coming steps' clips (the same run as without)",
    )
    ap.add_argument("--save-every", type=float, default=300.0, help="seconds between checkpoints")
    ap.add_argument(
        "--stop-after",
        type=float,
        metavar="SECONDS",
        help="end the run, checkpointed, at the first step past this many seconds (--resume goes on)",
    )


def check_train_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse's error (exit 2) for train options out of their range."""
    if not 0.0 <= args.drop_to_task <= 1.0:
        ap.error(f"--drop-to-task must be a chance between 0 and 1, got {args.drop_to_task}")
    if not 0.0 <= args.ema < 1.0:
        ap.error(f"--ema must be a decay at least 0 and below 1, got {args.ema}")
    if args.two_objects is not None and not 0.0 <= args.two_objects <= 1.0:
        ap.error(f"--two-objects must be a chance between 0 and 1, got {args.two_objects}")
    if args.stop_after is not None and not args.stop_after >= 0.0:
        ap.error(f"--stop-after must be seconds, at least 0, got {args.stop_after}")


def add_train(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    ap = commands.add_parser("train", help="train the codec (unless OUT has one), then the flow")
    for add in (add_run_options, add_session_options, add_schedule_options, add_data_options):
        add(ap)
    add_codec_options(ap)
    ap.set_defaults(command=train)
    return ap


def add_finetune(commands: argparse._SubParsersAction) -> None:
    ap = commands.add_parser(
        "finetune-decoder", help="fine-tune the decoder of OUT's codec, the encoder frozen"
    )
    add_run_options(ap)
    ap.add_argument("--steps", type=int, required=True, help="decoder fine-tuning steps")
    ap.add_argument(
        "--init",
        type=Path,
        help="a bundle's JSON: OUT is first made a copy of it, its flow and record kept",
    )
    ap.add_argument(
        "--input",
        choices=("noisy", "denoised"),
        default="noisy",
        help="latents with noise up to --codec-noise, or the denoiser's output (as when generating)",
    )
    ap.add_argument("--sharpen", type=int, default=0, help="add a sharpening stage this wide")
    add_codec_options(ap)
    ap.set_defaults(command=finetune)


def add_export(commands: argparse._SubParsersAction) -> None:
    ap = commands.add_parser("export", help="write a run's bundle in float16 (to ship it)")
    ap.add_argument("run", type=Path, metavar="RUN", help="run directory")
    ap.add_argument("--out", required=True, type=Path, help="where the bundle goes")
    ap.add_argument("--temperature", type=float, help="the bundle's default sampling temperature")
    ap.add_argument(
        "--v2v-null",
        choices=V2V_NULLS,
        help="guided edits' unconditional text: '' or '(v2v) ' (task: after --drop-to-task)",
    )
    ap.add_argument(
        "--v2v-carry",
        type=int,
        help="edited frames an edit segment takes as context from the one before",
    )
    ap.set_defaults(command=export)


def add_average(commands: argparse._SubParsersAction) -> None:
    ap = commands.add_parser("average", help="average bundles of one model into OUT")
    ap.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE_JSON", help="the bundles")
    ap.add_argument("--out", required=True, type=Path, help="where the mean bundle goes")
    ap.set_defaults(command=average)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m engine.demo.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = ap.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    train_parser = add_train(commands)
    add_finetune(commands)
    add_export(commands)
    add_average(commands)
    args = ap.parse_args(argv)
    if args.command is train:
        check_train_args(train_parser, args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.command(args)


def run(argv: list[str] | None = None) -> int:
    """The command line: bad input (a missing or wrong run, a truncated file) exits with status 2
    and a one-line message; nothing in OUT is replaced."""
    try:
        main(argv)
    except (EngineError, OSError, ValueError) as exc:
        log.error("error: %s", exc)
        return 2
    return 0
