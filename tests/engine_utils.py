"""Tiny random STARFlow-V configurations for engine tests (every switch of the 7B model on)."""

from __future__ import annotations

import torch

from engine.config import FlowConfig
from engine.model import StarFlow


def tiny_config(**changes) -> FlowConfig:
    base = dict(
        in_channels=4,
        img_size=4,
        patch_size=1,
        channels=32,
        top_block_channels=48,
        num_blocks=3,
        layers_per_block=(1, 1, 2),
        txt_size=5,
        txt_dim=8,
        head_dim=16,
        pt_seq_len=4,
        soft_clip=4.0,
        temporal_causal=2,
        denoiser_window=2,
        denoiser_layers=2,
    )
    base.update(changes)
    return FlowConfig(**base)


def random_model(cfg: FlowConfig, seed: int = 0, std: float = 0.15) -> StarFlow:
    """A model far from identity: every parameter (zero-initialised projections too) random."""
    torch.manual_seed(seed)
    model = StarFlow(cfg).eval().requires_grad_(False)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=std)
    return model
