"""The editor's STARFlow-V engine options and GPU memory presets (Qt-free).

    options = EngineOptions(preset=AUTO, aspect_ratio="9:16")
    options.loader_options(gpu_memory())   # {"offload": True, "window": 6, ...} on a 24 GB card

Each preset's peak for a 5-second 480p clip with guidance is measured by
benchmarks/memory_7b.py (the README's memory table); scripts/gpu_7b_check.sh checks it on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from engine.starflow_v.sizes import GUIDANCE

AUTO = "auto"  # the preset for the card found at load time
CUSTOM = "custom"  # offload and window as set by hand
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
LARGE_GUIDANCE = GUIDANCE  # the 7B's, as its loader sets it


@dataclass(frozen=True)
class MemoryPreset:
    gigabytes: int  # the card's size as sold
    offload: bool  # shallow blocks and denoiser in CPU memory between uses
    window: int | None  # deep-block attention window in latent frames (None: the whole clip)
    vae_on_cpu: bool = False  # the VAE encodes and decodes in CPU memory
    peak_gib: float | None = None  # benchmarks/memory_7b.py: a 5-second 480p clip with guidance

    @property
    def name(self) -> str:
        return f"{self.gigabytes} GB"


PRESETS = (
    MemoryPreset(80, offload=False, window=None, peak_gib=43.1),
    MemoryPreset(48, offload=True, window=None, peak_gib=39.3),
    MemoryPreset(24, offload=True, window=6, peak_gib=21.8),
    MemoryPreset(16, offload=True, window=3, vae_on_cpu=True, peak_gib=14.2),
)


def preset_for(total_bytes: int | None) -> MemoryPreset | None:
    """The largest preset a card of `total_bytes` takes (cards report a little under the size
    they are sold as); the smallest for smaller cards; None without a GPU."""
    if not total_bytes:
        return None
    gib = total_bytes / 2**30
    return next((p for p in PRESETS if gib >= 0.9 * p.gigabytes), PRESETS[-1])


def preset_named(name: str) -> MemoryPreset | None:
    return next((p for p in PRESETS if p.name == name), None)


def gpu_memory() -> int | None:
    """Total memory of CUDA device 0 in bytes; None without a GPU."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


@dataclass(frozen=True)
class EngineOptions:
    """How the editor loads a STARFlow-V checkpoint (the demo model ignores these)."""

    preset: str = AUTO  # AUTO, a preset's name, or CUSTOM
    offload: bool = False  # used with CUSTOM
    window: int = 0  # used with CUSTOM; 0: the whole clip
    aspect_ratio: str = "16:9"
    config: str = ""  # the checkpoint's .yaml/.json; "": beside it, else the 7B's
    text_encoder: str = ""  # folder or Hub repo; "": the config's
    vae: str = ""  # folder or Hub repo; "": the config's
    guidance: float = LARGE_GUIDANCE  # new requests' guidance once a STARFlow-V model is loaded
    vae_on_cpu: bool = False  # used with CUSTOM

    def memory(self, gpu_bytes: int | None) -> MemoryPreset | None:
        """The memory settings this load uses on a card of `gpu_bytes` (None: no GPU); None:
        everything on the device, whole-clip attention."""
        if self.preset == CUSTOM:
            return MemoryPreset(0, self.offload, self.window or None, self.vae_on_cpu)
        return preset_for(gpu_bytes) if self.preset == AUTO else preset_named(self.preset)

    def loader_options(self, gpu_bytes: int | None) -> dict[str, Any]:
        """Keyword options for engine.registry.load_pipeline (LargeOptions' fields)."""
        memory = self.memory(gpu_bytes) or MemoryPreset(0, False, None)
        return {
            "offload": memory.offload,
            "window": memory.window,
            "vae_on_cpu": memory.vae_on_cpu,
            "aspect_ratio": self.aspect_ratio,
            "config": self.config or None,
            "text_encoder": self.text_encoder or None,
            "vae": self.vae or None,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
