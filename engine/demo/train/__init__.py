"""Training the Shapes-world demo model (`python -m engine.demo.train COMMAND`, see `cli`):
`config` (TrainConfig, the learning-rate schedule), `codec` (stage 1 and decoder fine-tunes),
`flow` (stage 2: FlowTrainer), `commands` (each subcommand's work) and `cli` (its options).
Bundles are written by engine.demo.bundle_write."""

from .cli import main, run
from .codec import codec_psnr, denoised_latents, finetune_decoder, latent_stats, train_codec
from .config import TrainConfig, frames_tensor, lr_at
from .flow import FlowTrainer, default_flow

__all__ = [
    "FlowTrainer",
    "TrainConfig",
    "codec_psnr",
    "default_flow",
    "denoised_latents",
    "finetune_decoder",
    "frames_tensor",
    "latent_stats",
    "lr_at",
    "main",
    "run",
    "train_codec",
]
