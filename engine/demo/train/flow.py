"""Stage 2: maximum likelihood of noise-augmented latents (noise_std in normalised latent units, as
the reference's --noise_std) over the task mix of engine.demo.data with caption dropping, and the
learnable denoiser trained by flow score matching (the reference's objective): it regresses the
flow's own score of the noisy latents, scaled so that x - 0.3 * denoiser(x) is the Tweedie
estimate x + noise_std^2 * score. Every step draws its data and noise from (seed, step), so a
resumed run equals an uninterrupted one."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from engine.config import FlowConfig
from engine.demo.bundle import split_state
from engine.demo.bundle_write import BUNDLE, BUNDLE_FILES, STATE, commit_parts, write_bundle_parts
from engine.demo.codec import DemoCodec
from engine.demo.data import step_data
from engine.demo.text import DemoTextEncoder
from engine.model import StarFlow
from engine.model.starflow import DENOISE_STEP

from .config import TrainConfig, frames_tensor, lr_at

log = logging.getLogger(__name__)


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


def score_target(nll: torch.Tensor, noisy: torch.Tensor, noise_std: float) -> torch.Tensor:
    """The denoiser's flow-score-matching target for noisy latents (requires_grad) and the flow's
    batch-mean NLL of them: numel * d(nll)/dx is d(total NLL)/dx = -score, and the sampler's
    x - 0.3 * D(x) is then the Tweedie estimate x + noise_std^2 * score. With noise_std = 0.3 this
    is the reference's target (x.grad * numel * noise_std)."""
    (grad,) = torch.autograd.grad(nll, noisy, retain_graph=True)
    return (grad * noisy.numel() * noise_std**2 / DENOISE_STEP).detach()


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
        train_cfg: TrainConfig,
        codec: DemoCodec,
        device: str | torch.device = "cpu",
        earlier: dict | None = None,
    ) -> None:
        """earlier: what the saved training record carries from the run this one resumes."""
        self.meta, self.train_cfg, self.device = meta, train_cfg, torch.device(device)
        self.earlier = earlier or {}
        torch.manual_seed(train_cfg.seed)
        self.flow = StarFlow(FlowConfig.from_dict(meta["flow"])).to(self.device)
        self.text = DemoTextEncoder.from_config(meta["text"]).to(self.device)
        self.codec = codec.to(self.device).eval().requires_grad_(False)
        den = self.flow.learnable_self_denoiser
        den_ids = {id(p) for p in den.parameters()}
        main = [p for p in self.flow.parameters() if id(p) not in den_ids]
        main += list(self.text.parameters())
        decay = train_cfg.weight_decay
        self.opt = torch.optim.AdamW(main, lr=train_cfg.lr, betas=(0.9, 0.95), weight_decay=decay)
        self.den_opt = torch.optim.AdamW(
            den.parameters(), lr=train_cfg.denoiser_lr, weight_decay=decay
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
        cfg = self.train_cfg
        return functools.partial(
            step_data,
            seed=cfg.seed,
            size=cfg.batch,
            drop_text=cfg.drop_text,
            two_objects=cfg.two_objects,
            drop_to_task=cfg.drop_to_task,
        )

    def inputs(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Noisy latents (B, T, C, h, w), clean latents and texts (some dropped) of `step`."""
        frames, texts = self.step_data(step)
        with torch.no_grad():
            x = self.codec.encode(frames_tensor(frames, self.device))
        gen = torch.Generator().manual_seed(self.train_cfg.seed * 1_000_003 + step)
        noise = torch.randn(x.shape, generator=gen).to(self.device)
        return x + self.train_cfg.noise_std * noise, x, texts

    def losses(self, step: int) -> dict[str, torch.Tensor]:
        """Flow NLL (backpropagated) and the denoiser's score-matching loss (not yet)."""
        noisy, _, texts = self.inputs(step)
        noisy.requires_grad_(True)
        y, _ = self.text.encode(texts)
        z, _, logdets = self.flow(noisy, y)
        nll = self.flow.loss(z, logdets)
        target = score_target(nll, noisy, self.train_cfg.noise_std)
        pred = self.flow.denoiser(noisy.detach(), y.detach())
        denoise = (pred - target).pow(2).mean()
        return {"nll": nll, "denoise": denoise}

    def set_lrs(self) -> float:
        cfg = self.train_cfg
        lr = lr_at(self.step, cfg.steps, cfg.lr, cfg.min_lr, cfg.warmup)
        for group in self.opt.param_groups:
            group["lr"] = lr
        for group in self.den_opt.param_groups:
            group["lr"] = lr_at(self.step, cfg.steps, cfg.denoiser_lr, cfg.min_lr, cfg.warmup)
        return lr

    def train_step(self, data_step: int | None = None) -> dict[str, float]:
        """One optimiser step on the data of `data_step` (default: the current step)."""
        lr = self.set_lrs()
        bf16 = self.train_cfg.autocast == "bf16"
        with torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
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
        plain mean of the weights so far, until that reaches train_cfg.ema (after
        1 / (1 - train_cfg.ema) steps), then train_cfg.ema. A function of the step, so a resume
        is exact."""
        return min(self.train_cfg.ema, (self.step - 1) / self.step)

    def update_ema(self) -> None:
        """With train_cfg.ema: fold the live weights (flow with its denoiser, text encoder) into
        the moving average; it starts as a copy of them."""
        if self.train_cfg.ema <= 0:
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
        return float(torch.nn.utils.clip_grad_norm_(params, self.train_cfg.grad_clip))

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
                self.log_progress(history[-log_every:], start, t0)
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

    def log_progress(self, recent: list[dict[str, float]], start: int, t0: float) -> None:
        """Log the mean losses of the `recent` steps and the speed since step `start` (at t0)."""
        log.info(
            "step %d/%d  nll %.4f  denoise %.4f  lr %.2e  |g| %.2f  %.2f steps/s",
            self.step,
            self.train_cfg.steps,
            np.mean([h["nll"] for h in recent]),
            np.mean([h["denoise"] for h in recent]),
            recent[-1]["lr"],
            recent[-1]["grad_norm"],
            (self.step - start) / (time.perf_counter() - t0),
        )

    # ---- checkpoints ---------------------------------------------------------------------------------
    def live_tensors(self) -> dict[str, torch.Tensor]:
        """The trained weights as they are now: `flow.` (with the denoiser) and `text.` tensors."""
        tensors = {f"flow.{k}": v for k, v in self.flow.state_dict().items()}
        tensors.update({f"text.{k}": v for k, v in self.text.state_dict().items()})
        return {k: v.detach() for k, v in tensors.items()}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The bundle's tensors: the trained weights (their moving average with train_cfg.ema)
        and the codec's."""
        tensors = dict(self.ema if self.ema is not None else self.live_tensors())
        tensors.update({f"codec.{k}": v for k, v in self.codec.state_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    def record(self, history: list[dict[str, float]] | None) -> dict:
        """The bundle's training record: the settings, the step, the last 100 steps' mean
        losses, and what the run carries from earlier ones."""
        recent = (history or [])[-100:]
        training = {
            **dataclasses.asdict(self.train_cfg),
            "step": self.step,
            "nll": float(np.mean([h["nll"] for h in recent])) if recent else None,
            "denoise": float(np.mean([h["denoise"] for h in recent])) if recent else None,
        }
        training.update(self.earlier)
        return training

    def save(self, out: Path, history: list[dict[str, float]] | None = None) -> None:
        """Write the bundle (weights + JSON) and the optimiser state, each atomically."""
        out.mkdir(parents=True, exist_ok=True)
        write_bundle_parts(out, self.tensors(), {**self.meta, "training": self.record(history)})
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
        with train_cfg.ema, or dropped without it)."""
        bundle = load_file(str(out / f"{BUNDLE}.safetensors"))
        opt = torch.load(out / STATE, map_location=self.device, weights_only=True)
        live = opt.get("live", bundle)
        self.flow.load_state_dict(split_state(live, "flow."))
        self.text.load_state_dict(split_state(live, "text."))
        self.opt.load_state_dict(opt["opt"])
        self.den_opt.load_state_dict(opt["den_opt"])
        self.step = int(opt["step"])
        self.resume_ema(out, bundle, "live" in opt)
        log.info("resumed %s at step %d", out, self.step)

    def resume_ema(self, out: Path, bundle: dict[str, torch.Tensor], kept: bool) -> None:
        """With train_cfg.ema, take the moving average from OUT's `bundle` where the run `kept`
        one; warn where the run and this trainer differ in keeping one."""
        if self.train_cfg.ema > 0:
            if not kept:
                log.warning("--ema: %s kept no moving average; it starts now", out)
            else:
                names = self.live_tensors().keys()
                self.ema = {k: bundle[k].float().to(self.device) for k in names}
        elif kept:
            log.warning("%s kept a moving average of its weights; without --ema it stops", out)
