"""Keep rarely used blocks off the GPU between uses (the `--offload` memory setting).

The 7B model's shallow blocks and denoiser (about 2.2B parameters) are only needed once per
frame; with offloading they live in pinned CPU memory and visit the GPU for each use, so the
GPU holds the deep block, its KV cache and one shallow block at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class Offloader:
    def __init__(self, modules: list[nn.Module], device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.modules = modules
        for m in modules:
            m.to("cpu")
            if self.device.type == "cuda":
                for p in m.parameters():
                    p.data = p.data.pin_memory()

    def owns(self, module: nn.Module) -> bool:
        return any(module is m for m in self.modules)

    @contextmanager
    def use(self, module: nn.Module) -> Iterator[nn.Module]:
        """Bring `module` to the compute device for the duration of the block."""
        if not self.owns(module):
            yield module
            return
        module.to(self.device, non_blocking=True)
        try:
            yield module
        finally:
            module.to("cpu")


def enable_offload(model: nn.Module, device: torch.device | str) -> Offloader:
    """Offload a StarFlow model's shallow blocks and denoiser; the top block stays on `device`."""
    mods = list(model.blocks[:-1])
    if hasattr(model, "learnable_self_denoiser"):
        mods.append(model.learnable_self_denoiser)
    model.blocks[-1].to(device)
    model.offloader = Offloader(mods, device)
    return model.offloader


@contextmanager
def resident(model: nn.Module, module: nn.Module) -> Iterator[nn.Module]:
    offloader = getattr(model, "offloader", None)
    if offloader is None:
        yield module
    else:
        with offloader.use(module):
            yield module
