"""What each subcommand of `python -m engine.demo.train` does, given its parsed arguments: a run's
setup (a new run, one started from a bundle with --init, or a resumed one), its codec, the
decoder fine-tune, the export and the average."""

from __future__ import annotations

import argparse
import json
import logging

import torch

from engine.demo.bundle_write import (
    BUNDLE,
    CODEC,
    STATE,
    average_bundles,
    bundle_meta,
    copy_bundle,
    export_bundle,
    init_codec,
    init_source,
    load_codec,
    replace_bundle_codec,
    save_codec,
)
from engine.demo.codec import CodecConfig, DemoCodec
from engine.demo.text import TextConfig, grammar_vocab
from engine.device import pick_device

from .codec import bundle_denoiser, finetune_decoder, finetune_record, train_codec
from .config import TrainConfig, check_autocast
from .flow import FlowTrainer, default_flow

log = logging.getLogger(__name__)

# the settings that make each step's data
DATA_KEYS = ("seed", "batch", "noise_std", "drop_text", "two_objects", "drop_to_task")


def data_changes(record: dict, train_cfg: TrainConfig) -> list[str]:
    """The settings that define each step's data where a resumed run's differ from its record's
    ("seed 0 -> 5"): with any, the resumed run is no longer the one it continues. A record from
    before a setting existed counts as that setting's default."""
    defaults = TrainConfig()
    changes = []
    for key in DATA_KEYS:
        was, now = record.get(key, getattr(defaults, key)), getattr(train_cfg, key)
        if was != now:
            changes.append(f"{key.replace('_', '-')} {was} -> {now}")
    return changes


def earlier_record(previous: dict) -> dict:
    """What a resumed run's training record keeps of the record it resumes: the decoder fine-tune
    (the bundle's codec is still that one) and each earlier run's last step and autocast."""
    kept = {k: previous[k] for k in ("decoder_finetune", "init") if k in previous}
    run = {"until": previous.get("step"), "autocast": previous.get("autocast", "none")}
    kept["runs"] = [*previous.get("runs", []), run]
    return kept


def codec_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields that train and finetune-decoder both take from their options."""
    return dict(
        seed=args.seed,
        noise_std=args.noise_std,
        codec_steps=args.codec_steps,
        codec_eval_frames=args.codec_eval_frames,
        codec_noise=args.codec_noise,
        codec_lr=args.codec_lr,
        codec_object_weight=args.object_weight,
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the train subcommand's options."""
    return TrainConfig(
        **codec_settings(args),
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup=args.warmup,
        two_objects=args.two_objects,
        autocast=args.autocast,
        ema=args.ema,
        drop_to_task=args.drop_to_task,
    )


def start_device(args: argparse.Namespace) -> torch.device:
    """Set the CPU threads of --threads and return the device of --device."""
    torch.set_num_threads(args.threads)
    return pick_device(args.device)


def stage_codec(
    args: argparse.Namespace, train_cfg: TrainConfig, device: torch.device
) -> DemoCodec:
    """The codec of --codec, else OUT's own, else one trained now (and saved in OUT)."""
    own = args.out / f"{CODEC}.safetensors"
    if args.codec is not None:
        return load_codec(args.codec, device)
    if own.exists():
        return load_codec(own, device)
    codec = train_codec(CodecConfig(channels=args.codec_channels), train_cfg, device)
    save_codec(codec, args.out)
    return codec


# ---- train -----------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> None:
    """Train OUT's run: a new one (its codec first), one started from --init's bundle, or the
    run OUT holds (--resume)."""
    device = start_device(args)
    if args.resume and not (args.out / STATE).exists():
        # Starting afresh instead would quietly drop what an --init run started from (its
        # first checkpoint comes only after --save-every seconds) and train a flow from scratch.
        raise ValueError(
            f"{args.out} holds no checkpoint to resume: start the run without --resume"
            " (with --init BUNDLE.json to start from a bundle)"
        )
    train_cfg = train_config(args)
    check_autocast(train_cfg, device)
    trainer = flow_trainer(args, train_cfg, device)
    trainer.train(
        train_cfg.steps,
        args.out,
        args.save_every,
        workers=args.workers,
        stop_after_s=args.stop_after,
    )


def flow_trainer(
    args: argparse.Namespace, train_cfg: TrainConfig, device: torch.device
) -> FlowTrainer:
    """The run's trainer with its weights: --init's bundle's, OUT's run's (--resume), or new."""
    start: dict[str, torch.Tensor] | None = None  # --init: the tensors the new run starts from
    if args.init is not None and not args.resume:
        meta, codec, start, earlier = init_run(args, train_cfg, device)
    else:
        codec = stage_codec(args, train_cfg, device)
        meta, earlier = run_meta(args, train_cfg, codec)
    trainer = FlowTrainer(meta, train_cfg, codec, device, earlier)
    log.info(
        "flow %d parameters, text %d",
        sum(p.numel() for p in trainer.flow.parameters()),
        sum(p.numel() for p in trainer.text.parameters()),
    )
    if start is not None:
        trainer.load_weights(start)
        log.info("starting from %s (its step %s)", args.init, earlier["init"]["step"])
    elif args.resume:
        trainer.resume(args.out)
    return trainer


def init_run(
    args: argparse.Namespace, train_cfg: TrainConfig, device: torch.device
) -> tuple[dict, DemoCodec, dict[str, torch.Tensor], dict]:
    """A new run from the bundle of --init: its meta (without its training record), its codec
    (also saved as OUT's codec, for later decoder fine-tunes), its tensors and the record of
    where the run started. OUT must not hold a run already (that one is resumed, not replaced)."""
    if (args.out / STATE).exists():
        raise ValueError(f"{args.out} already holds a run: --resume it, or start in another folder")
    source, state = init_source(args.init)
    previous = source.pop("training", {})
    source.pop("weights_dtype", None)
    source["noise_std"] = train_cfg.noise_std
    codec = init_codec(args.init, source, state, args.out, device)
    init = {"from": str(args.init), "step": previous.get("step"), "record": previous}
    return source, codec, state, {"init": init}


def run_meta(
    args: argparse.Namespace, train_cfg: TrainConfig, codec: DemoCodec
) -> tuple[dict, dict]:
    """A new run's bundle JSON (the flow of --flow over `codec`), or with --resume OUT's bundle
    JSON without its training record; and what the run's record keeps of earlier runs."""
    text = TextConfig(vocab=grammar_vocab())
    flow = default_flow(codec.channels, text.dim, text.max_tokens, **args.flow)
    meta = bundle_meta(flow, codec.cfg, text, train_cfg.noise_std)
    if not args.resume:
        return meta, {}
    meta = json.loads((args.out / f"{BUNDLE}.json").read_text())
    record = meta.pop("training")
    changes = data_changes(record, train_cfg)
    if changes:
        log.warning(
            "resuming with other data than the run's own (%s): pass its settings "
            "again for the run it would have been",
            ", ".join(changes),
        )
    return meta, earlier_record(record)


# ---- finetune-decoder, export, average --------------------------------------------------------------
def finetune(args: argparse.Namespace) -> None:
    """Fine-tune the decoder of OUT's codec (with --init: of a copy of that bundle made in OUT)
    on noisy or denoised latents, and put it into OUT's bundle, if there is one."""
    device = start_device(args)
    train_cfg = TrainConfig(**codec_settings(args))
    if args.init is not None:
        codec = copy_bundle(args.init, args.out, device)
    else:
        codec = stage_codec(args, train_cfg, device)
    if args.sharpen and not codec.cfg.sharpen:
        codec = codec.with_sharpen(args.sharpen, seed=train_cfg.seed)
    denoiser = None
    if args.input == "denoised":
        denoiser = bundle_denoiser(args.out, codec, device)
    codec = finetune_decoder(codec, args.steps, train_cfg, denoiser)
    save_codec(codec, args.out)
    if (args.out / f"{BUNDLE}.json").exists():
        record = finetune_record(args.steps, args.input, codec, train_cfg)
        replace_bundle_codec(args.out, codec, record)


def export(args: argparse.Namespace) -> None:
    """Write RUN's bundle in float16 into OUT, with the sampling settings given."""
    export_bundle(
        args.run,
        args.out,
        temperature=args.temperature,
        v2v_null=args.v2v_null,
        v2v_carry=args.v2v_carry,
    )


def average(args: argparse.Namespace) -> None:
    """Make OUT's bundle the mean of the bundles given."""
    average_bundles(args.bundles, args.out)
