"""Train the built-in Shapes-world demo model (codec fit, then flow + text + denoiser).

    python -m engine.train --out runs/demo --steps 4000 [--resume] [--device cuda]

Maximum likelihood with noise augmentation, caption dropping for guidance, the task mix of
engine.demo.data, and the denoiser trained to remove the augmentation noise (x - 0.3 * D(x)).
Reproducible from the seed: every step draws its data from (seed, step), so a resumed run
equals an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.config import FlowConfig
from engine.demo import build_components
from engine.demo.codec import DemoCodec
from engine.demo.data import EDIT_FRAMES, batch
from engine.model import StarFlow
from engine.model.starflow import DENOISE_STEP
from engine.shapes.world import FPS, HEIGHT, TRAIN_FRAMES, WIDTH, random_scene, render

log = logging.getLogger("engine.train")


def default_meta(components: int = 16, width: int = 192, top_layers: int = 6) -> dict:
    flow = FlowConfig(in_channels=components, img_size=8, patch_size=2, channels=128,
                      top_block_channels=width, num_blocks=4, layers_per_block=(1, 1, 1, top_layers),
                      txt_size=24, txt_dim=64, head_dim=32, pt_seq_len=4, soft_clip=4.0,
                      temporal_causal=1, denoiser_window=4, denoiser_layers=2)
    return {"name": "Shapes world demo", "flow": flow.to_dict(), "codec": {"components": components},
            "text": {"dim": 64, "max_tokens": 24}, "noise_std": 0.3, "fps": FPS, "width": WIDTH,
            "height": HEIGHT, "train_frames": TRAIN_FRAMES,
            "sampling": {"context_noise": 0.3, "v2v_segment": EDIT_FRAMES, "jacobi_block_size": 16,
                         "jacobi_max_iter": 24, "jacobi_threshold": 1e-4}}


class Trainer:
    def __init__(self, meta: dict, seed: int, device: str, lr: float, steps: int, batch_size: int) -> None:
        self.meta, self.seed, self.device = meta, seed, torch.device(device)
        self.steps, self.batch_size, self.lr = steps, batch_size, lr
        torch.manual_seed(seed)
        self.flow = StarFlow(FlowConfig.from_dict(meta["flow"])).to(self.device)
        self.codec, self.text = build_components(meta)
        fit_rng = np.random.default_rng([seed, 10**6])
        frames = np.concatenate([render(random_scene(fit_rng), 2, int(fit_rng.integers(0, 64)))
                                 for _ in range(1500)])
        self.codec = DemoCodec.fit(frames, meta["codec"]["components"]).to(self.device)
        self.text = self.text.to(self.device)
        params = list(self.flow.parameters()) + list(self.text.parameters())
        self.opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
        self.step = 0

    def lr_at(self, step: int) -> float:
        warm = 200
        if step < warm:
            return self.lr * (step + 1) / warm
        t = (step - warm) / max(1, self.steps - warm)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    def losses(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        _, texts, clips = batch(rng, self.batch_size)
        texts = [t if rng.random() > 0.1 else "" for t in texts]  # caption dropping for CFG
        with torch.no_grad():
            frames = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
            x = self.codec.encode(frames.to(self.device))
        sigma = self.meta["noise_std"]
        noise = torch.randn(x.shape, generator=gen).to(self.device)
        noisy = x + sigma * noise
        y, _ = self.text.encode(texts)
        z, _, logdets = self.flow(noisy, y)
        nll = self.flow.loss(z, logdets)
        pred = self.flow.denoiser(noisy, y)
        den = (pred - sigma * noise / DENOISE_STEP).pow(2).mean()
        return {"nll": nll, "denoise": den, "loss": nll + den}

    def train(self, until: int, out: Path, every: int) -> None:
        t0, seen = time.perf_counter(), 0
        while self.step < until:
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(self.step)
            parts = self.losses(self.step)
            self.opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], 1.0)
            self.opt.step()
            self.step += 1
            seen += 1
            if self.step % 25 == 0 or self.step == until:
                rate = seen / (time.perf_counter() - t0)
                log.info("step %d  nll %.4f  denoise %.4f  lr %.2e  %.2f steps/s", self.step,
                         parts["nll"].item(), parts["denoise"].item(), self.lr_at(self.step), rate)
            if self.step % every == 0 or self.step == until:
                self.save(out)

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"flow.{k}": v for k, v in self.flow.state_dict().items()}
        tensors.update({f"codec.{k}": v for k, v in self.codec.state_dict().items()})
        tensors.update({f"text.{k}": v for k, v in self.text.state_dict().items()})
        meta = dict(self.meta, training={"step": self.step, "seed": self.seed, "lr": self.lr,
                                         "batch_size": self.batch_size, "steps": self.steps})
        tmp = out / "shapes_demo.safetensors.part"
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        (out / "shapes_demo.json").write_text(json.dumps(meta, indent=1))
        tmp.replace(out / "shapes_demo.safetensors")
        torch.save({"optimizer": self.opt.state_dict(), "step": self.step}, out / "optimizer.pt")
        log.info("saved step %d to %s", self.step, out)

    def resume(self, out: Path) -> None:
        state = load_file(str(out / "shapes_demo.safetensors"))
        self.flow.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("flow.")})
        self.codec.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("codec.")})
        self.text.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")})
        opt = torch.load(out / "optimizer.pt", map_location=self.device, weights_only=True)
        self.opt.load_state_dict(opt["optimizer"])
        self.step = int(opt["step"])
        log.info("resumed at step %d", self.step)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--width", type=int, default=192, help="top block channels")
    ap.add_argument("--top-layers", type=int, default=6)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = default_meta(width=args.width, top_layers=args.top_layers)
    trainer = Trainer(meta, args.seed, args.device, args.lr, args.steps, args.batch)
    if args.resume and (args.out / "optimizer.pt").exists():
        trainer.resume(args.out)
    trainer.train(args.steps, args.out, args.save_every)


if __name__ == "__main__":
    main()
