"""Stage 1: the per-frame autoencoder, trained to decode latents with Gaussian noise added, then
its latent normalisation; and decoder fine-tunes with the encoder frozen (on noisy latents, or on
what the trained flow's denoiser makes of them)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.demo.bundle import load_bundle
from engine.demo.bundle_write import BUNDLE, check_bundle_codec
from engine.demo.codec import CodecConfig, DemoCodec
from engine.demo.data import batch_rng, make_batch, random_frames
from engine.demo.text import DemoTextEncoder
from engine.demo.world import TRAIN_FRAMES
from engine.denoise import denoise_clip
from engine.model import StarFlow

from .config import TrainConfig, frames_tensor, lr_at

log = logging.getLogger(__name__)

OBJECT_MARGIN = 2  # pixels around an object that its weight covers (where a wrong shape shows)

BatchLoss = Callable[[int, torch.Generator], torch.Tensor]  # (step, generator) -> that batch's loss


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


def codec_device(codec: DemoCodec) -> torch.device:
    return codec.latent_mean.device


def random_frames_loss(
    codec: DemoCodec, train_cfg: TrainConfig, frozen: bool, data_seed: int
) -> BatchLoss:
    """codec_loss on each step's train_cfg.codec_batch random frames."""

    def batch_loss(step: int, gen: torch.Generator) -> torch.Tensor:
        frames = random_frames(batch_rng(data_seed, step), train_cfg.codec_batch)
        x = frames_tensor(frames, codec_device(codec))
        return codec_loss(
            codec, x, train_cfg.codec_noise, gen, frozen, train_cfg.codec_object_weight
        )

    return batch_loss


def optimise_codec(
    codec: DemoCodec,
    steps: int,
    train_cfg: TrainConfig,
    frozen: bool,
    data_seed: int,
    batch_loss: BatchLoss | None = None,
) -> None:
    """AdamW with warm-up and cosine decay on the decoder (and the encoder unless `frozen`).
    batch_loss(step, generator): the loss of `step`'s batch; default: random_frames_loss."""
    params = list((codec.decoder if frozen else codec).parameters())
    if batch_loss is None:
        batch_loss = random_frames_loss(codec, train_cfg, frozen, data_seed)
    peak = train_cfg.codec_lr
    opt = torch.optim.AdamW(params, lr=peak, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(data_seed)
    t0, warmup = time.perf_counter(), min(100, max(1, steps // 10))
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, peak, peak / 50, warmup)
        loss = batch_loss(step, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
        opt.step()
        if (step + 1) % 50 == 0:
            rate = (step + 1) / (time.perf_counter() - t0)
            log.info(
                "codec step %d/%d  loss %.2e  %.2f steps/s", step + 1, steps, loss.item(), rate
            )


def report_codec(codec: DemoCodec, train_cfg: TrainConfig) -> None:
    """Log the codec's PSNR on held-out frames, clean and with latent noise."""
    rng = np.random.default_rng([train_cfg.seed + 1, 10**6])
    held_out = random_frames(rng, train_cfg.codec_eval_frames // 4)
    x = frames_tensor(held_out, codec_device(codec))
    log.info(
        "codec held-out PSNR %.2f dB clean, %.2f / %.2f dB with latent noise 0.1 / %.2f",
        codec_psnr(codec, x),
        codec_psnr(codec, x, 0.1),
        codec_psnr(codec, x, train_cfg.noise_std),
        train_cfg.noise_std,
    )


def train_codec(cfg: CodecConfig, train_cfg: TrainConfig, device: torch.device) -> DemoCodec:
    """Train the autoencoder from scratch and set its latent normalisation."""
    torch.manual_seed(train_cfg.seed)
    codec = DemoCodec(cfg).to(device)
    optimise_codec(
        codec, train_cfg.codec_steps, train_cfg, frozen=False, data_seed=train_cfg.seed + 7
    )
    codec.eval()
    fit = random_frames(np.random.default_rng([train_cfg.seed, 10**6]), train_cfg.codec_eval_frames)
    codec.with_normalisation(*latent_stats(codec, frames_tensor(fit, device)))
    report_codec(codec, train_cfg)
    return codec


# ---- decoder fine-tunes ----------------------------------------------------------------------------
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


def denoised_clips_loss(
    codec: DemoCodec, flow: StarFlow, text: DemoTextEncoder, train_cfg: TrainConfig
) -> BatchLoss:
    """denoised_decoder_loss on each step's clips, enough for train_cfg.codec_batch frames."""
    clips = max(1, math.ceil(train_cfg.codec_batch / TRAIN_FRAMES))

    def batch_loss(step: int, gen: torch.Generator) -> torch.Tensor:
        batch = make_batch(batch_rng(train_cfg.seed + 13, step), clips)
        return denoised_decoder_loss(
            codec,
            flow,
            text,
            batch.frames,
            batch.texts,
            train_cfg.noise_std,
            gen,
            train_cfg.codec_object_weight,
        )

    return batch_loss


def finetune_decoder(
    codec: DemoCodec,
    steps: int,
    train_cfg: TrainConfig,
    denoiser: tuple[StarFlow, DemoTextEncoder] | None = None,
) -> DemoCodec:
    """More decoder training with the encoder and normalisation frozen: the latents (and so a
    flow trained on them) stay valid. The decoder learns to decode latents with noise of up to
    train_cfg.codec_noise added; or, given the trained (flow, text encoder), the denoiser's output
    for latents with the flow's training noise: what it decodes in the pipeline."""
    codec.requires_grad_(False).decoder.requires_grad_(True)
    batch_loss = None
    if denoiser is not None:
        batch_loss = denoised_clips_loss(codec, *denoiser, train_cfg)
    data_seed = train_cfg.seed + 11
    optimise_codec(codec, steps, train_cfg, frozen=True, data_seed=data_seed, batch_loss=batch_loss)
    codec.eval().requires_grad_(False)
    report_codec(codec, train_cfg)
    return codec


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


def finetune_record(steps: int, source: str, codec: DemoCodec, train_cfg: TrainConfig) -> dict:
    """A decoder fine-tune as the bundle's training record lists it: steps, sharpening width,
    what the decoder was fed (`source`: noisy or denoised), and of `train_cfg`: peak learning
    rate, latent noise, object weight, data seed."""
    return {
        "steps": steps,
        "sharpen": codec.cfg.sharpen,
        "input": source,
        "lr": train_cfg.codec_lr,
        "noise": train_cfg.codec_noise if source == "noisy" else train_cfg.noise_std,
        "object_weight": train_cfg.codec_object_weight,
        "seed": train_cfg.seed,
    }
