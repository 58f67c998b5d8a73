"""Train the built-in Shapes-world demo model: the codec first, then flow + text encoder + denoiser.

    python -m engine.demo.train --out runs/demo --steps 6000 --seed 0 [--resume] [--device cpu|cuda]

Stage 1 (skipped when OUT/codec.safetensors exists, or with --codec PATH): the per-frame
autoencoder, decoding latents with Gaussian noise added, then its latent normalisation.
Stage 2: maximum likelihood of noise-augmented latents (noise_std in normalised latent units, as
the reference's --noise_std) over the task mix of engine.demo.data with caption dropping, and the
learnable denoiser trained by flow score matching (the reference's objective): it regresses the
flow's own score of the noisy latents, scaled so that x - 0.3 * denoiser(x) is the Tweedie
estimate x + noise_std^2 * score.

OUT holds the shippable bundle (shapes_demo.safetensors with `flow.`, `codec.`, `text.` tensors
and shapes_demo.json) and train_state.pt (optimisers, step). Every step draws its data and noise
from (seed, step), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import json
import logging
import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from engine.api import EngineError
from engine.config import FlowConfig
from engine.demo.bundle import load_bundle, sampling_settings, split_state
from engine.demo.codec import CodecConfig, DemoCodec
from engine.demo.data import (
    EDIT_FRAMES,
    batch_rng,
    make_batch,
    random_frames,
    step_data,
    to_unit,
)
from engine.demo.pipeline import V2V_NULLS
from engine.demo.text import DemoTextEncoder, TextConfig, grammar_vocab
from engine.demo.world import FPS, HEIGHT, TRAIN_FRAMES, WIDTH
from engine.denoise import denoise_clip
from engine.device import SLOW_PRECISION, pick_device, precision_slowdown
from engine.model import StarFlow
from engine.model.starflow import DENOISE_STEP

log = logging.getLogger("engine.demo.train")

BUNDLE = "shapes_demo"
CODEC = "codec"
STATE = "train_state.pt"
BUNDLE_FILES = (f"{BUNDLE}.safetensors", f"{BUNDLE}.json")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 6000
    seed: int = 0
    batch: int = 8
    lr: float = 5e-4
    min_lr: float = 2e-5
    warmup: int = 200
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    denoiser_lr: float = 3e-4
    noise_std: float = 0.3  # latent noise augmentation, normalised latent units
    drop_text: float = 0.1  # caption dropping for classifier-free guidance
    drop_to_task: float = 0.0  # chance a dropped "(v2v) ..."/"(extend) ..." text keeps its prefix
    two_objects: float | None = None  # chance a training scene has two objects (None: the world's)
    codec_steps: int = 1000
    codec_batch: int = 32
    codec_lr: float = 2e-3
    codec_noise: float = 0.1  # the decoder sees latents + U(0, codec_noise) * N(0, 1)
    codec_eval_frames: int = 2048  # frames for the latent statistics (a quarter: held-out PSNR)
    codec_object_weight: float = 0.0  # the decoder's loss counts pixels near objects 1 + this
    autocast: str = "none"  # "bf16": flow forward and backward under bfloat16 autocast
    ema: float = 0.0  # > 0: the bundle holds this exponential moving average of the weights


def check_autocast(
    tc: TrainConfig, device: torch.device, limit: float = SLOW_PRECISION
) -> float | None:
    """With --autocast bf16, warn (with the measured factor) when this device's bfloat16 products
    are over `limit` times slower than float32 ones, so a run is not left crawling for hours.
    Returns the factor, None without bf16."""
    if tc.autocast != "bf16":
        return None
    factor = precision_slowdown(device, torch.bfloat16)
    if factor > limit:
        log.warning(
            "--autocast bf16: a matrix product takes %.1fx as long in bfloat16 as in float32 on "
            "this %s (no native bfloat16): training will be slower, not faster; "
            "--autocast none is the fast choice here",
            factor,
            device.type.upper(),
        )
    return factor


def lr_at(step: int, total: int, peak: float, floor: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to `floor` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min((step - warmup) / max(1, total - warmup), 1.0)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * t))


def frames_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1] on `device`."""
    return torch.from_numpy(to_unit(frames)).to(device)


# ---- stage 1: the codec ----------------------------------------------------------------------------
OBJECT_MARGIN = 2  # pixels around an object that its weight covers (where a wrong shape shows)


def object_weights(x: torch.Tensor, weight: float) -> torch.Tensor | None:
    """Per-pixel loss weights (N, 1, H, W) for frames x (N, 3, H, W) in [-1, 1]: 1 + `weight`
    on and within OBJECT_MARGIN px of an object (any pixel off the frame's background colour,
    its median: objects cover under a fifth of a frame), 1 elsewhere; None for weight 0. A plain
    MSE is nearly all background: a small triangle decoded as a circle costs a few pixels'
    error, so the decoder learns blobs, which the scorer reads as circles."""
    if weight == 0:
        return None
    background = x.flatten(2).median(2).values[:, :, None, None]
    on = ((x - background).abs().amax(1, keepdim=True) > 0.05).to(x.dtype)
    near = F.max_pool2d(on, 2 * OBJECT_MARGIN + 1, stride=1, padding=OBJECT_MARGIN)
    return 1 + weight * near


def decoder_error(decoded: torch.Tensor, x: torch.Tensor, weight: float) -> torch.Tensor:
    """The decoder's loss: squared error over frames (N, 3, H, W), weighted by object_weights."""
    err = (decoded - x).pow(2)
    w = object_weights(x, weight)
    return err.mean() if w is None else (err * w).mean()


def codec_loss(
    codec: DemoCodec,
    x: torch.Tensor,
    max_noise: float,
    gen: torch.Generator,
    frozen: bool,
    object_weight: float = 0.0,
) -> torch.Tensor:
    """Error (decoder_error) of decoding the latents of x (N, 3, H, W) with per-frame noise
    U(0, max) added. Latents are batch-normalised while the encoder trains; `frozen`: the codec's
    own statistics."""
    if frozen:
        with torch.no_grad():
            z = codec.encode(x[:, None])[:, 0]
    else:
        raw = codec.encoder(x)
        z = (raw - raw.mean((0, 2, 3), keepdim=True)) / (raw.std((0, 2, 3), keepdim=True) + 1e-5)
    sigma = max_noise * torch.rand(x.size(0), 1, 1, 1, generator=gen)
    noise = torch.randn(z.shape, generator=gen)
    decoded = codec.decoder(z + sigma.to(z.device) * noise.to(z.device))
    return decoder_error(decoded, x, object_weight)


@torch.no_grad()
def latent_stats(codec: DemoCodec, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (C,) of the raw latents of frames (N, 3, H, W)."""
    raw = torch.cat([codec.encode_raw(chunk) for chunk in frames.split(256)])
    return raw.mean((0, 2, 3)), raw.std((0, 2, 3))


@torch.no_grad()
def codec_psnr(codec: DemoCodec, frames: torch.Tensor, noise: float = 0.0, seed: int = 0) -> float:
    """PSNR (dB, peak-to-peak 2) of encode -> (+ noise) -> decode over frames (N, 3, H, W)."""
    z = codec.encode(frames[:, None])
    z = z + noise * torch.randn(z.shape, generator=torch.Generator().manual_seed(seed)).to(z.device)
    mse = (codec.decode(z)[:, 0] - frames).pow(2).mean().item()
    return 10 * math.log10(4 / max(mse, 1e-12))


def optimise_codec(
    codec: DemoCodec,
    steps: int,
    tc: TrainConfig,
    frozen: bool,
    data_seed: int,
    batch_loss: Callable[[int, torch.Generator], torch.Tensor] | None = None,
) -> None:
    """AdamW with warm-up and cosine decay on the decoder (and the encoder unless `frozen`).
    batch_loss(step, generator): the loss of `step`'s batch; default: codec_loss on
    tc.codec_batch random frames."""
    params = list((codec.decoder if frozen else codec).parameters())
    if batch_loss is None:

        def batch_loss(step: int, gen: torch.Generator) -> torch.Tensor:
            frames = random_frames(batch_rng(data_seed, step), tc.codec_batch)
            x = frames_tensor(frames, codec_device(codec))
            return codec_loss(codec, x, tc.codec_noise, gen, frozen, tc.codec_object_weight)

    opt = torch.optim.AdamW(params, lr=tc.codec_lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(data_seed)
    t0, warmup = time.perf_counter(), min(100, max(1, steps // 10))
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, tc.codec_lr, tc.codec_lr / 50, warmup)
        loss = batch_loss(step, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()
        if (step + 1) % 50 == 0:
            log.info(
                "codec step %d/%d  loss %.2e  %.2f steps/s",
                step + 1,
                steps,
                loss.item(),
                (step + 1) / (time.perf_counter() - t0),
            )


def codec_device(codec: DemoCodec) -> torch.device:
    return codec.latent_mean.device


def report_codec(codec: DemoCodec, tc: TrainConfig) -> None:
    held_out = random_frames(np.random.default_rng([tc.seed + 1, 10**6]), tc.codec_eval_frames // 4)
    x = frames_tensor(held_out, codec_device(codec))
    log.info(
        "codec held-out PSNR %.2f dB clean, %.2f / %.2f dB with latent noise 0.1 / %.2f",
        codec_psnr(codec, x),
        codec_psnr(codec, x, 0.1),
        codec_psnr(codec, x, tc.noise_std),
        tc.noise_std,
    )


def train_codec(cfg: CodecConfig, tc: TrainConfig, device: torch.device) -> DemoCodec:
    """Train the autoencoder from scratch and set its latent normalisation."""
    torch.manual_seed(tc.seed)
    codec = DemoCodec(cfg).to(device)
    optimise_codec(codec, tc.codec_steps, tc, frozen=False, data_seed=tc.seed + 7)
    codec.eval()
    fit = random_frames(np.random.default_rng([tc.seed, 10**6]), tc.codec_eval_frames)
    codec.with_normalisation(*latent_stats(codec, frames_tensor(fit, device)))
    report_codec(codec, tc)
    return codec


def denoised_latents(
    codec: DemoCodec,
    flow: StarFlow,
    text: DemoTextEncoder,
    x: torch.Tensor,
    texts: list[str],
    noise_std: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """What generation hands the decoder for clips x (B, T, 3, H, W) in [-1, 1]: their latents
    with the flow's training noise (noise_std) added, cleaned by the flow's denoiser under their
    texts. No gradients."""
    with torch.no_grad():
        z = codec.encode(x)
        noisy = z + noise_std * torch.randn(z.shape, generator=gen).to(z.device)
        y, _ = text.encode(texts)
        return denoise_clip(flow, noisy, y.to(z.device))


def denoised_decoder_loss(
    codec: DemoCodec,
    flow: StarFlow,
    text: DemoTextEncoder,
    frames: np.ndarray,
    texts: list[str],
    noise_std: float,
    gen: torch.Generator,
    object_weight: float = 0.0,
) -> torch.Tensor:
    """Error (decoder_error) of decoding what the pipeline decodes (`denoised_latents`) for
    clips (B, T, H, W, 3) against the clips themselves."""
    x = frames_tensor(frames, codec_device(codec))
    z = denoised_latents(codec, flow, text, x, texts, noise_std, gen)
    return decoder_error(codec.decoder(z.flatten(0, 1)), x.flatten(0, 1), object_weight)


def finetune_decoder(
    codec: DemoCodec,
    steps: int,
    tc: TrainConfig,
    denoiser: tuple[StarFlow, DemoTextEncoder] | None = None,
) -> DemoCodec:
    """More decoder training with the encoder and normalisation frozen: the latents (and so a
    flow trained on them) stay valid. The decoder learns to decode latents with noise of up to
    tc.codec_noise added; or, given the trained (flow, text encoder), the denoiser's output for
    latents with the flow's training noise: what it decodes in the pipeline."""
    codec.requires_grad_(False).decoder.requires_grad_(True)
    batch_loss = None
    if denoiser is not None:
        flow, text = denoiser
        clips = max(1, math.ceil(tc.codec_batch / TRAIN_FRAMES))

        def batch_loss(step: int, gen: torch.Generator) -> torch.Tensor:
            batch = make_batch(batch_rng(tc.seed + 13, step), clips)
            return denoised_decoder_loss(
                codec,
                flow,
                text,
                batch.frames,
                batch.texts,
                tc.noise_std,
                gen,
                tc.codec_object_weight,
            )

    optimise_codec(codec, steps, tc, frozen=True, data_seed=tc.seed + 11, batch_loss=batch_loss)
    codec.eval().requires_grad_(False)
    report_codec(codec, tc)
    return codec


def save_codec(codec: DemoCodec, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in codec.state_dict().items()},
        str(out / f"{CODEC}.safetensors"),
    )
    (out / f"{CODEC}.json").write_text(json.dumps(codec.cfg.to_dict(), indent=1))


def load_codec(path: Path, device: torch.device) -> DemoCodec:
    """A codec saved by save_codec (path: its .safetensors) or inside a bundle."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    state = load_file(str(path))
    if "codec" in meta:
        return build_codec(meta["codec"], split_state(state, "codec."), device)
    return build_codec(meta, state, device)


def build_codec(cfg: dict, state: dict[str, torch.Tensor], device: torch.device) -> DemoCodec:
    """The frozen codec of configuration `cfg` with tensors `state`, on `device`."""
    codec = DemoCodec.from_config(cfg)
    codec.load_state_dict(state)
    return codec.to(device).eval().requires_grad_(False)


# ---- stage 2: flow, text encoder and denoiser ------------------------------------------------------
def default_flow(in_channels: int, txt_dim: int, max_tokens: int, **changes: Any) -> FlowConfig:
    """The demo flow over 6x8 latents of `in_channels` channels."""
    base = dict(
        in_channels=in_channels,
        img_size=8,
        patch_size=2,
        channels=128,
        top_block_channels=256,
        num_blocks=4,
        layers_per_block=(1, 1, 1, 6),
        txt_size=max_tokens,
        txt_dim=txt_dim,
        head_dim=64,
        pt_seq_len=4,
        soft_clip=4.0,
        temporal_causal=1,
        shallow_block_local=True,
        denoiser_window=None,
        denoiser_layers=2,
    )
    base.update(changes)
    return FlowConfig(**base)


def bundle_meta(flow: FlowConfig, codec: CodecConfig, text: TextConfig, tc: TrainConfig) -> dict:
    """The bundle JSON (engine.pipeline.load_bundle reads it), without the training record."""
    return {
        "name": "Shapes world demo",
        "flow": flow.to_dict(),
        "codec": codec.to_dict(),
        "text": text.to_dict(),
        "noise_std": tc.noise_std,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "train_frames": TRAIN_FRAMES,
        "sampling": {
            "context_noise": tc.noise_std,
            "v2v_segment": EDIT_FRAMES,
            "extend_context": TRAIN_FRAMES - 1,
            "jacobi_block_size": 12,
            "jacobi_max_iter": 12,
            "jacobi_threshold": 1e-3,
        },
    }


def score_target(nll: torch.Tensor, noisy: torch.Tensor, noise_std: float) -> torch.Tensor:
    """The denoiser's flow-score-matching target for noisy latents (requires_grad) and the flow's
    batch-mean NLL of them: numel * d(nll)/dx is d(total NLL)/dx = -score, and the sampler's
    x - 0.3 * D(x) is then the Tweedie estimate x + noise_std^2 * score. With noise_std = 0.3 this
    is the reference's target (x.grad * numel * noise_std)."""
    (grad,) = torch.autograd.grad(nll, noisy, retain_graph=True)
    return (grad * noisy.numel() * noise_std**2 / DENOISE_STEP).detach()


# the settings that make each step's data
DATA_KEYS = ("seed", "batch", "noise_std", "drop_text", "two_objects", "drop_to_task")


def data_changes(record: dict, tc: TrainConfig) -> list[str]:
    """The settings that define each step's data where a resumed run's differ from its record's
    ("seed 0 -> 5"): with any, the resumed run is no longer the one it continues. A record from
    before a setting existed counts as that setting's default."""
    defaults = TrainConfig()
    changes = []
    for key in DATA_KEYS:
        was, now = record.get(key, getattr(defaults, key)), getattr(tc, key)
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


class Prefetcher:
    """Runs job(step) for steps start, start + 1, ... (up to `until`) in `workers` spawned
    processes, keeping 2 * workers steps in flight: the trainer takes each step's result in order
    while the next ones render."""

    def __init__(self, job: Callable[[int], Any], start: int, until: int, workers: int) -> None:
        self.pool = multiprocessing.get_context("spawn").Pool(workers)
        self.job, self.until, self.depth = job, until, 2 * workers
        self.pending: collections.deque = collections.deque()
        self.next = start
        self.fill()

    def fill(self) -> None:
        while len(self.pending) < self.depth and self.next < self.until:
            self.pending.append((self.next, self.pool.apply_async(self.job, (self.next,))))
            self.next += 1

    def has(self, step: int) -> bool:
        return bool(self.pending) and self.pending[0][0] == step

    def take(self, step: int) -> Any:
        first, result = self.pending.popleft()
        assert first == step, (first, step)
        self.fill()
        return result.get()

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


class FlowTrainer:
    """Stage 2 state: modules, optimisers and the step counter (the data is a function of it)."""

    def __init__(
        self,
        meta: dict,
        tc: TrainConfig,
        codec: DemoCodec,
        device: str | torch.device = "cpu",
        earlier: dict | None = None,
    ) -> None:
        """earlier: what the saved training record carries from the run this one resumes."""
        self.meta, self.tc, self.device = meta, tc, torch.device(device)
        self.earlier = earlier or {}
        torch.manual_seed(tc.seed)
        self.flow = StarFlow(FlowConfig.from_dict(meta["flow"])).to(self.device)
        self.text = DemoTextEncoder.from_config(meta["text"]).to(self.device)
        self.codec = codec.to(self.device).eval().requires_grad_(False)
        den = self.flow.learnable_self_denoiser
        den_ids = {id(p) for p in den.parameters()}
        main = [p for p in self.flow.parameters() if id(p) not in den_ids] + list(
            self.text.parameters()
        )
        self.opt = torch.optim.AdamW(
            main, lr=tc.lr, betas=(0.9, 0.95), weight_decay=tc.weight_decay
        )
        self.den_opt = torch.optim.AdamW(
            den.parameters(), lr=tc.denoiser_lr, weight_decay=tc.weight_decay
        )
        self.step = 0
        self.prefetch: Prefetcher | None = None
        self.prefetched = 0  # steps whose data came from the workers
        self.ema: dict[str, torch.Tensor] | None = None  # float32, as live_tensors() names them

    def step_data(self, step: int) -> tuple[np.ndarray, list[str]]:
        """The clips and texts of `step`: from the prefetching workers while they run, else
        rendered here (the same either way)."""
        if self.prefetch is not None and self.prefetch.has(step):
            self.prefetched += 1
            return self.prefetch.take(step)
        return self.data_job()(step)

    def data_job(self) -> Callable[[int], tuple[np.ndarray, list[str]]]:
        """step -> that step's clips and texts under this run's data settings (picklable, for
        the rendering workers too)."""
        tc = self.tc
        return functools.partial(
            step_data,
            seed=tc.seed,
            size=tc.batch,
            drop_text=tc.drop_text,
            two_objects=tc.two_objects,
            drop_to_task=tc.drop_to_task,
        )

    def inputs(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Noisy latents (B, T, C, h, w), clean latents and texts (some dropped) of `step`."""
        frames, texts = self.step_data(step)
        with torch.no_grad():
            x = self.codec.encode(frames_tensor(frames, self.device))
        gen = torch.Generator().manual_seed(self.tc.seed * 1_000_003 + step)
        noise = torch.randn(x.shape, generator=gen).to(self.device)
        return x + self.tc.noise_std * noise, x, texts

    def losses(self, step: int) -> dict[str, torch.Tensor]:
        """Flow NLL (backpropagated) and the denoiser's score-matching loss (not yet)."""
        noisy, _, texts = self.inputs(step)
        noisy.requires_grad_(True)
        y, _ = self.text.encode(texts)
        z, _, logdets = self.flow(noisy, y)
        nll = self.flow.loss(z, logdets)
        target = score_target(nll, noisy, self.tc.noise_std)
        pred = self.flow.denoiser(noisy.detach(), y.detach())
        denoise = (pred - target).pow(2).mean()
        return {"nll": nll, "denoise": denoise}

    def set_lrs(self) -> float:
        tc = self.tc
        lr = lr_at(self.step, tc.steps, tc.lr, tc.min_lr, tc.warmup)
        for group in self.opt.param_groups:
            group["lr"] = lr
        for group in self.den_opt.param_groups:
            group["lr"] = lr_at(self.step, tc.steps, tc.denoiser_lr, tc.min_lr, tc.warmup)
        return lr

    def train_step(self, data_step: int | None = None) -> dict[str, float]:
        """One optimiser step on the data of `data_step` (default: the current step)."""
        lr = self.set_lrs()
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.tc.autocast == "bf16"):
            parts = self.losses(self.step if data_step is None else data_step)
        self.opt.zero_grad(set_to_none=True)
        self.den_opt.zero_grad(set_to_none=True)
        (parts["nll"] + parts["denoise"]).backward()
        gnorm = self.clip(self.opt)
        self.clip(self.den_opt)
        self.opt.step()
        self.den_opt.step()
        self.step += 1
        self.update_ema()
        return {
            "nll": parts["nll"].item(),
            "denoise": parts["denoise"].item(),
            "lr": lr,
            "grad_norm": gnorm,
        }

    def ema_decay(self) -> float:
        """The moving average's decay at step `self.step` (counted from 1): (step - 1) / step, the
        plain mean of the weights so far, until that reaches tc.ema (after 1 / (1 - tc.ema)
        steps), then tc.ema. A function of the step, so a resume is exact."""
        return min(self.tc.ema, (self.step - 1) / self.step)

    def update_ema(self) -> None:
        """With tc.ema: fold the live weights (flow with its denoiser, text encoder) into the
        moving average; it starts as a copy of them."""
        if self.tc.ema <= 0:
            return
        live = self.live_tensors()
        if self.ema is None:
            self.ema = {k: v.float().clone() for k, v in live.items()}
            return
        weight = 1.0 - self.ema_decay()
        with torch.no_grad():
            for k, v in live.items():
                if v.is_floating_point():
                    self.ema[k].lerp_(v.float(), weight)
                else:
                    self.ema[k].copy_(v)

    def clip(self, opt: torch.optim.Optimizer) -> float:
        params = [p for g in opt.param_groups for p in g["params"]]
        return float(torch.nn.utils.clip_grad_norm_(params, self.tc.grad_clip))

    def train(
        self,
        until: int,
        out: Path | None = None,
        save_every_s: float = 300.0,
        log_every: int = 25,
        workers: int = 0,
        stop_after_s: float | None = None,
    ) -> list[dict[str, float]]:
        """Train up to step `until`, saving to `out` every `save_every_s` seconds and at the end.
        `workers` > 0: that many processes render the coming steps' clips meanwhile (for a GPU,
        which trains faster than one CPU core renders); the run is the same as without them.
        `stop_after_s`: end early, checkpointed, at the first step past that many seconds (a
        machine lent for a while); a resume continues it as if it had not stopped."""
        if workers <= 0:
            return self._train(until, out, save_every_s, log_every, stop_after_s)
        with self.prefetching(until, workers):
            return self._train(until, out, save_every_s, log_every, stop_after_s)

    @contextlib.contextmanager
    def prefetching(self, until: int, workers: int) -> Iterator[Prefetcher]:
        """While inside: `workers` processes render the data of steps self.step .. until - 1."""
        self.prefetch = Prefetcher(self.data_job(), self.step, until, workers)
        try:
            yield self.prefetch
        finally:
            self.prefetch.close()
            self.prefetch = None

    def _train(
        self,
        until: int,
        out: Path | None,
        save_every_s: float,
        log_every: int,
        stop_after_s: float | None = None,
    ) -> list[dict[str, float]]:
        t0, start, last_save, history = time.perf_counter(), self.step, time.perf_counter(), []
        while self.step < until:
            history.append(self.train_step())
            stop = stop_after_s is not None and time.perf_counter() - t0 > stop_after_s
            if self.step % log_every == 0 or self.step == until:
                recent = history[-log_every:]
                log.info(
                    "step %d/%d  nll %.4f  denoise %.4f  lr %.2e  |g| %.2f  %.2f steps/s",
                    self.step,
                    self.tc.steps,
                    np.mean([h["nll"] for h in recent]),
                    np.mean([h["denoise"] for h in recent]),
                    history[-1]["lr"],
                    history[-1]["grad_norm"],
                    (self.step - start) / (time.perf_counter() - t0),
                )
            if out is not None and (
                time.perf_counter() - last_save > save_every_s or self.step == until or stop
            ):
                self.save(out, history)
                last_save = time.perf_counter()
            if stop:
                log.info(
                    "stopping at step %d of %d after %.0f s (--stop-after): --resume continues",
                    self.step,
                    until,
                    time.perf_counter() - t0,
                )
                break
        return history

    # ---- checkpoints ---------------------------------------------------------------------------------
    def live_tensors(self) -> dict[str, torch.Tensor]:
        """The trained weights as they are now: `flow.` (with the denoiser) and `text.` tensors."""
        tensors = {f"flow.{k}": v for k, v in self.flow.state_dict().items()}
        tensors.update({f"text.{k}": v for k, v in self.text.state_dict().items()})
        return {k: v.detach() for k, v in tensors.items()}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The bundle's tensors: the trained weights (their moving average with tc.ema) and the
        codec's."""
        tensors = dict(self.ema if self.ema is not None else self.live_tensors())
        tensors.update({f"codec.{k}": v for k, v in self.codec.state_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    def save(self, out: Path, history: list[dict[str, float]] | None = None) -> None:
        """Write the bundle (weights + JSON) and the optimiser state, each atomically."""
        out.mkdir(parents=True, exist_ok=True)
        recent = (history or [])[-100:]
        training = {
            **dataclasses.asdict(self.tc),
            "step": self.step,
            "nll": float(np.mean([h["nll"] for h in recent])) if recent else None,
            "denoise": float(np.mean([h["denoise"] for h in recent])) if recent else None,
        }
        training.update(self.earlier)
        write_bundle_parts(out, self.tensors(), {**self.meta, "training": training})
        state = {
            "step": self.step,
            "opt": self.opt.state_dict(),
            "den_opt": self.den_opt.state_dict(),
        }
        if self.ema is not None:  # the bundle holds the average: the live weights go here
            state["live"] = {k: v.cpu().contiguous() for k, v in self.live_tensors().items()}
        torch.save(state, out / f"{STATE}.part")
        commit_parts(out, (*BUNDLE_FILES, STATE))
        log.info("saved step %d to %s", self.step, out)

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Start from a bundle's flow and text-encoder tensors (any float dtype; the shipped
        bundle's are float16), keeping this trainer's fresh optimisers and step 0."""
        try:
            self.flow.load_state_dict(split_state(state, "flow."))
            self.text.load_state_dict(split_state(state, "text."))
        except RuntimeError as exc:  # missing, unexpected or mis-shaped tensors
            raise ValueError(f"the bundle's weights do not fit its configuration: {exc}") from exc

    def resume(self, out: Path) -> None:
        """Continue OUT's run: the live weights from the bundle, or from the optimiser state where
        the run kept a moving average (then the bundle's weights are that average, continued
        with tc.ema, or dropped without it)."""
        bundle = load_file(str(out / f"{BUNDLE}.safetensors"))
        opt = torch.load(out / STATE, map_location=self.device, weights_only=True)
        live = opt.get("live", bundle)
        self.flow.load_state_dict(split_state(live, "flow."))
        self.text.load_state_dict(split_state(live, "text."))
        self.opt.load_state_dict(opt["opt"])
        self.den_opt.load_state_dict(opt["den_opt"])
        self.step = int(opt["step"])
        if self.tc.ema > 0:
            if "live" not in opt:
                log.warning("--ema: %s kept no moving average; it starts now", out)
            else:
                names = self.live_tensors().keys()
                self.ema = {k: bundle[k].float().to(self.device) for k in names}
        elif "live" in opt:
            log.warning("%s kept a moving average of its weights; without --ema it stops", out)
        log.info("resumed %s at step %d", out, self.step)


def write_bundle_parts(out: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a bundle's weights and JSON as `.part` files; commit_parts makes them current."""
    save_file(tensors, str(out / f"{BUNDLE}.safetensors.part"))
    (out / f"{BUNDLE}.json.part").write_text(json.dumps(meta, indent=1))


def commit_parts(out: Path, names: tuple[str, ...]) -> None:
    """Rename each OUT/name.part over OUT/name (each file replaced atomically)."""
    for name in names:
        (out / f"{name}.part").replace(out / name)


def check_bundle_codec(run: Path, codec: DemoCodec) -> dict:
    """OUT's bundle JSON, after checking that its flow was trained on `codec`'s latents."""
    meta = json.loads((run / f"{BUNDLE}.json").read_text())
    if meta.get("codec", {}).get("kind") != "autoencoder":
        raise ValueError(f"{run}: the bundle has no learned codec to replace")
    stats = tuple(tuple(meta["codec"].get(k, ())) for k in ("latent_mean", "latent_std"))
    if stats != (codec.cfg.latent_mean, codec.cfg.latent_std):
        raise ValueError(f"{run}: the codec's latents differ from those the flow was trained on")
    return meta


def bundle_denoiser(
    run: Path, codec: DemoCodec, device: torch.device
) -> tuple[StarFlow, DemoTextEncoder]:
    """The trained flow (with its denoiser) and text encoder of OUT's bundle, frozen, loaded as
    the pipeline loads them (in float32)."""
    if not (run / f"{BUNDLE}.json").exists():
        raise ValueError(f"{run}: no trained flow to denoise with (train the flow first)")
    check_bundle_codec(run, codec)
    pipe = load_bundle(run / f"{BUNDLE}.json", str(device), "float32")
    return pipe.model, pipe.text


def replace_bundle_codec(
    run: Path,
    codec: DemoCodec,
    steps: int,
    source: str,
    tc: TrainConfig,
) -> None:
    """Put `codec` (a decoder fine-tuned with the encoder frozen) into OUT's bundle: the flow was
    trained on the same latents, so it stays valid. Written atomically, like a checkpoint. The
    training record lists each fine-tune (steps, sharpening width, what the decoder was fed, and
    of `tc`: peak learning rate, latent noise, object weight, data seed)."""
    meta = check_bundle_codec(run, codec)
    state = load_file(str(run / f"{BUNDLE}.safetensors"))
    state = {k: v for k, v in state.items() if not k.startswith("codec.")}
    state.update({f"codec.{k}": v.cpu().contiguous() for k, v in codec.state_dict().items()})
    meta["codec"] = codec.cfg.to_dict()
    record = meta.setdefault("training", {})
    earlier = record.get("decoder_finetune", [])
    record["decoder_finetune"] = [
        *([earlier] if isinstance(earlier, dict) else earlier),
        {
            "steps": steps,
            "sharpen": codec.cfg.sharpen,
            "input": source,
            "lr": tc.codec_lr,
            "noise": tc.codec_noise if source == "noisy" else tc.noise_std,
            "object_weight": tc.codec_object_weight,
            "seed": tc.seed,
        },
    ]
    write_bundle_parts(run, state, meta)
    commit_parts(run, BUNDLE_FILES)
    log.info("replaced the codec of %s's bundle (sharpen %d)", run, codec.cfg.sharpen)


def export_bundle(
    run: Path,
    dest: Path,
    dtype: torch.dtype = torch.float16,
    temperature: float | None = None,
    v2v_null: str | None = None,
    v2v_carry: int | None = None,
) -> None:
    """Copy OUT's bundle to `dest` (e.g. resources/models) with weights stored as `dtype`
    (loaders cast to the model's dtype), halving the shipped size. `temperature`: the bundle's
    default sampling temperature (what `python -m engine.demo.eval shapes --temperature` measured best);
    None keeps the run's (1 unless set). `v2v_null`: guided edits' unconditional text ("empty" or
    "task", engine.pipeline.PipelineSettings) and `v2v_carry` (edited frames an edit segment takes
    from the one before); None keeps the run's."""
    meta = json.loads((run / f"{BUNDLE}.json").read_text())
    meta["weights_dtype"] = str(dtype).removeprefix("torch.")
    if temperature is not None:
        meta["sampling"]["temperature"] = temperature
    if v2v_null is not None:
        meta["sampling"]["v2v_null"] = v2v_null
    if v2v_carry is not None:
        meta["sampling"]["v2v_carry"] = v2v_carry
    sampling_settings(meta)  # what the loader will check, checked before anything is written
    state = load_file(str(run / f"{BUNDLE}.safetensors"))
    dest.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()},
        str(dest / f"{BUNDLE}.safetensors"),
    )
    (dest / f"{BUNDLE}.json").write_text(json.dumps(meta, indent=1))
    log.info("exported %s (step %s) to %s", run, meta["training"]["step"], dest)


# ---- command line ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, type=Path, help="run directory")
    ap.add_argument("--steps", type=int, default=TrainConfig.steps, help="flow training steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    ap.add_argument(
        "--init",
        type=Path,
        help="a bundle's JSON (e.g. resources/models/shapes_demo.json): a new run in OUT starts "
        "from its flow, text encoder and codec, with fresh optimisers and a new schedule",
    )
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--batch", type=int, default=TrainConfig.batch)
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes rendering the coming steps' clips (for CUDA: one core renders a batch "
        "of 8 clips in ~14 ms, far slower than a GPU trains on it); the same run as without",
    )
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--min-lr", type=float, default=TrainConfig.min_lr, help="cosine floor")
    ap.add_argument("--warmup", type=int, default=TrainConfig.warmup, help="warm-up steps")
    ap.add_argument("--noise-std", type=float, default=TrainConfig.noise_std)
    ap.add_argument(
        "--two-objects",
        type=float,
        metavar="P",
        help="chance that a training scene holds two objects (default: the world's own draw, "
        "one or two alike); more spends the training on the harder scenes",
    )
    ap.add_argument(
        "--autocast",
        choices=("none", "bf16"),
        default="none",
        help="bf16: matrix products in bfloat16 (CPUs with AVX-512 BF16 or AMX, GPUs; the run "
        "warns where they are slower than float32); parameters, optimiser and checkpoints "
        "stay float32",
    )
    ap.add_argument(
        "--drop-to-task",
        type=float,
        default=0.0,
        metavar="P",
        help="a dropped caption with a task prefix becomes the prefix alone ('(v2v) ') with this "
        "chance, else '' (default 0): trains the unconditional text of guided edits "
        "(--export --v2v-null task)",
    )
    ap.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="keep an exponential moving average of the flow's and text encoder's weights with "
        "this decay per step (e.g. 0.9995) and make it OUT's bundle (what --export and --average "
        "take); the live weights are kept for --resume in train_state.pt",
    )
    ap.add_argument("--codec", type=Path, help="a trained codec .safetensors (skips stage 1)")
    ap.add_argument("--codec-steps", type=int, default=TrainConfig.codec_steps)
    ap.add_argument("--codec-channels", type=int, default=8)
    ap.add_argument("--codec-noise", type=float, default=TrainConfig.codec_noise)
    ap.add_argument("--codec-lr", type=float, default=TrainConfig.codec_lr)
    ap.add_argument(
        "--object-weight",
        type=float,
        default=TrainConfig.codec_object_weight,
        help="the decoder's loss counts pixels on and near objects 1 + this (default 0: plain "
        "MSE, nearly all background)",
    )
    ap.add_argument(
        "--sharpen",
        type=int,
        default=0,
        help="with --decoder-steps: add a full-resolution sharpening stage this wide",
    )
    ap.add_argument(
        "--average",
        type=Path,
        nargs="+",
        metavar="BUNDLE_JSON",
        help="make OUT's bundle the mean of these bundles' weights (the same model, e.g. the "
        "ends of successive runs), then exit",
    )
    ap.add_argument("--export", type=Path, help="write OUT's bundle in float16 here, then exit")
    ap.add_argument(
        "--temperature",
        type=float,
        help="with --export: the bundle's default sampling temperature (noise scale)",
    )
    ap.add_argument(
        "--v2v-null",
        choices=V2V_NULLS,
        help="with --export: guided edits' unconditional text, '' (empty) or '(v2v) ' (task: "
        "for a model trained with --drop-to-task)",
    )
    ap.add_argument(
        "--v2v-carry",
        type=int,
        help="with --export: edited frames an edit segment after the first takes as context from "
        "the one before, after its source frames (0 to the segment length - 1)",
    )
    ap.add_argument(
        "--decoder-steps",
        type=int,
        default=0,
        help="only fine-tune the decoder of OUT's codec this many steps, then exit (with --init: "
        "OUT is first made a copy of that bundle, its flow and training record kept)",
    )
    ap.add_argument(
        "--decoder-input",
        choices=("noisy", "denoised"),
        default="noisy",
        help="with --decoder-steps: noisy: latents with noise up to --codec-noise; denoised: "
        "the denoiser of OUT's trained flow applied to latents with the flow's training noise "
        "(what the decoder gets when generating)",
    )
    ap.add_argument("--codec-eval-frames", type=int, default=TrainConfig.codec_eval_frames)
    ap.add_argument("--save-every", type=float, default=300.0, help="seconds between checkpoints")
    ap.add_argument(
        "--stop-after",
        type=float,
        metavar="SECONDS",
        help="end the run early, checkpointed, at the first step past this many seconds of"
        " training (a lent machine's time); --resume continues it as if it had not stopped",
    )
    ap.add_argument(
        "--flow",
        type=json.loads,
        default={},
        help="FlowConfig overrides as JSON, e.g. '{\"top_block_channels\": 192}'",
    )
    args = ap.parse_args(argv)
    if not 0.0 <= args.drop_to_task <= 1.0:
        ap.error(f"--drop-to-task must be a chance between 0 and 1, got {args.drop_to_task}")
    if not 0.0 <= args.ema < 1.0:
        ap.error(f"--ema must be a decay at least 0 and below 1, got {args.ema}")
    if args.two_objects is not None and not 0.0 <= args.two_objects <= 1.0:
        ap.error(f"--two-objects must be a chance between 0 and 1, got {args.two_objects}")
    if args.stop_after is not None and not args.stop_after >= 0.0:
        ap.error(f"--stop-after must be seconds, at least 0, got {args.stop_after}")
    return args


def init_source(path: Path, option: str = "--init") -> tuple[dict, dict[str, torch.Tensor]]:
    """The JSON and tensors of the bundle given to `option` (--init: the bundle a run starts from),
    checked to be a demo bundle with a learned codec and a flow; a missing or truncated file is a
    ValueError naming the option and the file."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{option} {path}: cannot read the bundle: {exc}") from exc
    if not isinstance(meta, dict) or not {"flow", "codec", "text"} <= set(meta):
        raise ValueError(f"{option} {path}: not a demo bundle (no flow, codec and text)")
    if not isinstance(meta["codec"], dict) or meta["codec"].get("kind") != "autoencoder":
        raise ValueError(f"{option} {path}: the bundle has no learned codec to train on")
    try:
        state = load_file(str(Path(path).with_suffix(".safetensors")))
    except Exception as exc:  # missing, truncated or damaged (safetensors' own error type)
        raise ValueError(f"{option} {path}: cannot read the bundle's weights: {exc}") from exc
    return meta, state


def check_out_free(out: Path, hint: str) -> None:
    """A ValueError (ending with `hint`) when OUT already holds a run or a bundle, which a new
    bundle written there would replace."""
    if (out / STATE).exists() or (out / f"{BUNDLE}.json").exists():
        raise ValueError(f"{out} already holds a run or a bundle: {hint}")


def init_codec(
    path: Path, meta: dict, state: dict[str, torch.Tensor], out: Path, device: torch.device
) -> DemoCodec:
    """The codec of the --init bundle at `path` (its meta and tensors), also saved as OUT's
    codec, for later decoder fine-tunes; tensors that do not fit are a ValueError naming it."""
    try:
        codec = build_codec(meta["codec"], split_state(state, "codec."), device)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise ValueError(f"--init {path}: its codec does not load: {exc}") from exc
    save_codec(codec, out)
    return codec


def init_run(
    args: argparse.Namespace, tc: TrainConfig, device: torch.device
) -> tuple[dict, DemoCodec, dict[str, torch.Tensor], dict]:
    """A new run from the bundle of --init: its meta (without its training record), its codec
    (also saved as OUT's codec, for later decoder fine-tunes), its tensors and the record of
    where the run started. OUT must not hold a run already (that one is resumed, not replaced)."""
    if (args.out / STATE).exists():
        raise ValueError(f"{args.out} already holds a run: --resume it, or start in another folder")
    source, state = init_source(args.init)
    previous = source.pop("training", {})
    source.pop("weights_dtype", None)
    source["noise_std"] = tc.noise_std
    codec = init_codec(args.init, source, state, args.out, device)
    init = {"from": str(args.init), "step": previous.get("step"), "record": previous}
    return source, codec, state, {"init": init}


def copy_bundle(path: Path, out: Path, device: torch.device) -> DemoCodec:
    """OUT as a copy of the bundle at `path` (weights in float32, its training record kept) with
    the bundle's codec saved beside it: a run whose decoder can be fine-tuned. OUT must not hold
    a run or a bundle already."""
    check_out_free(out, "fine-tune it without --init")
    meta, state = init_source(path)
    meta.pop("weights_dtype", None)
    codec = init_codec(path, meta, state, out, device)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    write_bundle_parts(out, state, meta)
    commit_parts(out, BUNDLE_FILES)
    log.info("copied %s to %s", path, out)
    return codec


def average_bundles(paths: list[Path], out: Path) -> None:
    """OUT's bundle as the element-wise mean of the bundles at `paths` (weights averaged in
    float32): runs of one lineage averaged, as stochastic weight averaging does across a schedule's
    cycles. The bundles must hold the same model (every setting but the training record, and the
    same tensor names and shapes); the JSON is the last one's, its training record listing each
    bundle's. OUT must not hold a run or a bundle already."""
    if len(paths) < 2:
        raise ValueError("--average needs two bundles or more")
    check_out_free(out, "average into another folder")
    total: dict[str, torch.Tensor] = {}
    records = []
    for i, path in enumerate(paths):
        meta, state = init_source(path, "--average")
        records.append(meta.pop("training", {}))
        meta.pop("weights_dtype", None)
        if i == 0:
            first = meta
            total = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
            continue
        if meta != first:
            differ = sorted(k for k in meta.keys() | first.keys() if meta.get(k) != first.get(k))
            raise ValueError(
                f"--average {path}: not the same model as {paths[0]} ({', '.join(differ)})"
            )
        if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in total.items()}:
            raise ValueError(f"--average {path}: its tensors differ from {paths[0]}'s")
        for k, v in state.items():
            if v.is_floating_point():
                total[k] += v.float()
            elif not torch.equal(v, total[k]):
                raise ValueError(f"--average {path}: its {k} differs from {paths[0]}'s")
    state = {k: v / len(paths) if v.is_floating_point() else v for k, v in total.items()}
    meta["training"] = {
        "step": records[-1].get("step"),
        "average": [{"from": str(p), "record": r} for p, r in zip(paths, records, strict=True)],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_bundle_parts(out, state, meta)
    commit_parts(out, BUNDLE_FILES)
    log.info("averaged %d bundles into %s", len(paths), out)


def stage_codec(args: argparse.Namespace, tc: TrainConfig, device: torch.device) -> DemoCodec:
    own = args.out / f"{CODEC}.safetensors"
    if args.codec is not None:
        return load_codec(args.codec, device)
    if own.exists():
        return load_codec(own, device)
    codec = train_codec(CodecConfig(channels=args.codec_channels), tc, device)
    save_codec(codec, args.out)
    return codec


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.export is not None:
        export_bundle(
            args.out,
            args.export,
            temperature=args.temperature,
            v2v_null=args.v2v_null,
            v2v_carry=args.v2v_carry,
        )
        return
    if args.average is not None:
        average_bundles(args.average, args.out)
        return
    if args.resume and not (args.out / STATE).exists():
        # Starting afresh instead would quietly drop what an --init run started from (its
        # first checkpoint comes only after --save-every seconds) and train a flow from scratch.
        raise ValueError(
            f"{args.out} holds no checkpoint to resume: start the run without --resume"
            " (with --init BUNDLE.json to start from a bundle)"
        )
    tc = TrainConfig(
        steps=args.steps,
        seed=args.seed,
        batch=args.batch,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup=args.warmup,
        noise_std=args.noise_std,
        two_objects=args.two_objects,
        codec_steps=args.codec_steps,
        codec_eval_frames=args.codec_eval_frames,
        codec_noise=args.codec_noise,
        codec_lr=args.codec_lr,
        codec_object_weight=args.object_weight,
        autocast=args.autocast,
        ema=args.ema,
        drop_to_task=args.drop_to_task,
    )
    check_autocast(tc, device)
    start: dict[str, torch.Tensor] | None = None  # --init: the tensors the new run starts from
    if args.init is not None and args.decoder_steps:
        finetune_stage(args, tc, copy_bundle(args.init, args.out, device), device)
        return
    if args.init is not None and not args.resume:
        meta, codec, start, earlier = init_run(args, tc, device)
    else:
        codec = stage_codec(args, tc, device)
        if args.decoder_steps:
            finetune_stage(args, tc, codec, device)
            return
        text = TextConfig(vocab=grammar_vocab())
        flow = default_flow(codec.channels, text.dim, text.max_tokens, **args.flow)
        meta = bundle_meta(flow, codec.cfg, text, tc)
        earlier = {}
        if args.resume:
            meta = json.loads((args.out / f"{BUNDLE}.json").read_text())
            record = meta.pop("training")
            changes = data_changes(record, tc)
            if changes:
                log.warning(
                    "resuming with other data than the run's own (%s): pass its settings "
                    "again for the run it would have been",
                    ", ".join(changes),
                )
            earlier = earlier_record(record)
    trainer = FlowTrainer(meta, tc, codec, device, earlier)
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
    trainer.train(
        tc.steps, args.out, args.save_every, workers=args.workers, stop_after_s=args.stop_after
    )


def finetune_stage(
    args: argparse.Namespace, tc: TrainConfig, codec: DemoCodec, device: torch.device
) -> None:
    """--decoder-steps: fine-tune OUT's decoder (on noisy or denoised latents) and put it into
    OUT's bundle, if there is one."""
    if args.sharpen and not codec.cfg.sharpen:
        codec = codec.with_sharpen(args.sharpen)
    denoiser = None
    if args.decoder_input == "denoised":
        denoiser = bundle_denoiser(args.out, codec, device)
    codec = finetune_decoder(codec, args.decoder_steps, tc, denoiser)
    save_codec(codec, args.out)
    if (args.out / f"{BUNDLE}.json").exists():
        replace_bundle_codec(args.out, codec, args.decoder_steps, args.decoder_input, tc)


def run(argv: list[str] | None = None) -> int:
    """The command line: bad input (a missing or wrong run, a truncated file) exits with status 2
    and a one-line message; nothing in OUT is replaced."""
    try:
        main(argv)
    except (EngineError, OSError, ValueError) as exc:
        log.error("error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run())
