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
    """Holds modules' weights in host memory (pinned where the device is a GPU). `use` gives a
    module device copies of them for the length of a block and drops the copies after: the host
    copies are never written back, as inference does not change weights."""

    def __init__(self, modules: list[nn.Module], device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.modules = modules
        self.host: dict[int, list[tuple[dict, str, torch.Tensor]]] = {}
        for m in modules:
            m.to("cpu")
            slots = _slots(m)
            if self.device.type == "cuda":
                for table, name, tensor in slots:
                    table[name] = _like(tensor, tensor.data.pin_memory())
            self.host[id(m)] = [(table, name, table[name]) for table, name, _ in slots]

    def owns(self, module: nn.Module) -> bool:
        return id(module) in self.host

    @contextmanager
    def use(self, module: nn.Module) -> Iterator[nn.Module]:
        """Bring `module` to the compute device for the duration of the block."""
        if not self.owns(module):
            yield module
            return
        host = self.host[id(module)]
        for table, name, tensor in host:
            table[name] = _like(tensor, tensor.data.to(self.device, non_blocking=True))
        try:
            yield module
        finally:
            for table, name, tensor in host:
                table[name] = tensor


def _slots(module: nn.Module) -> list[tuple[dict, str, torch.Tensor]]:
    """Every parameter and buffer of `module` as (the table holding it, its name, the tensor)."""
    return [
        (table, name, tensor)
        for m in module.modules()
        for table in (m._parameters, m._buffers)
        for name, tensor in table.items()
        if tensor is not None
    ]


def _like(original: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """`data` as a parameter where `original` is one."""
    if isinstance(original, nn.Parameter):
        return nn.Parameter(data, requires_grad=original.requires_grad)
    return data


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
