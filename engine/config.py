"""The flow model's configuration: one frozen dataclass, readable from the reference YAML and our JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# reference YAML argument name -> our field name (the rest keep their names)
_YAML_RENAMES = {"channel_size": "in_channels", "blocks": "num_blocks", "sos": "sos"}
# reference constructor arguments we accept but do not need (training-only or unused switches)
_IGNORED = {
    "use_checkpoint",
    "use_checkpoint_mlp",
    "use_pretrained_lm",
    "use_mm_attn",
    "num_heads",
    "num_kv_heads",
    "use_swiglu",
    "use_bias",
    "use_qk_norm",
    "use_post_norm",
    "norm_type",
    "hf_style_rope",
    "adaln",
    "nvp",
}
# reference defaults for switches that must hold for this implementation
_REQUIRED = {
    "num_heads": (None,),
    "num_kv_heads": (None,),
    "use_swiglu": (0, False),
    "use_bias": (1, True),
    "use_qk_norm": (0, False),
    "use_post_norm": (0, False),
    "norm_type": ("layer_norm",),
    "use_pretrained_lm": (None,),
    "use_mm_attn": (0, False),
    "hf_style_rope": (0, False),
    "adaln": (0, False),
}


@dataclass(frozen=True)
class FlowConfig:
    """STARFlow(-V) model switches, named as the reference `transformer_flow.Model` arguments."""

    in_channels: int
    img_size: int
    patch_size: int
    channels: int
    num_blocks: int
    layers_per_block: tuple[int, ...]
    txt_size: int
    txt_dim: int
    head_dim: int = 64
    top_block_channels: int | None = None
    rope: bool = True
    pt_seq_len: int | None = None
    sos: bool = True
    cond_top_only: bool = True
    use_softplus: bool = True
    use_final_norm: bool = True
    soft_clip: float = 0.0
    seq_order: str = "L2R"
    learnable_self_denoiser: bool = True
    conditional_denoiser: bool = True
    temporal_causal: int = 2
    shallow_block_local: bool = True
    denoiser_window: int | None = None
    local_attn_window: int | None = None
    denoiser_layers: int = 8  # fixed at 8 in the reference; configurable for small models
    expansion: float = 4.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        lpb = tuple(int(n) for n in self.layers_per_block)
        if len(lpb) == 1:
            lpb = lpb * self.num_blocks
        object.__setattr__(self, "layers_per_block", lpb)
        if len(lpb) != self.num_blocks:
            raise ValueError(
                f"layers_per_block has {len(lpb)} entries for {self.num_blocks} blocks"
            )
        if self.seq_order not in ("L2R", "R2L"):
            raise ValueError(f"seq_order must be L2R or R2L, got {self.seq_order!r}")
        if self.temporal_causal and self.seq_order != "L2R":
            raise ValueError("a temporally causal model needs seq_order L2R")
        if not self.sos:
            raise ValueError(
                "only SOS-token models are supported (every released STARFlow-V uses sos=1)"
            )
        if not self.rope:
            raise ValueError(
                "only RoPE models are supported (every released STARFlow-V uses rope=1)"
            )
        if self.txt_size <= 0 or self.txt_dim <= 0:
            raise ValueError("a text-conditioned model is required (txt_size and txt_dim > 0)")
        for name in ("channels", "top", "denoiser"):
            width = self.top_channels if name == "top" else self.channels
            if width % self.head_dim:
                raise ValueError(
                    f"{name} width {width} is not a multiple of head_dim {self.head_dim}"
                )

    @property
    def top_channels(self) -> int:
        return self.top_block_channels or self.channels

    @property
    def token_channels(self) -> int:
        """Channels of one patchified token."""
        return self.in_channels * self.patch_size**2

    @property
    def rope_seq_len(self) -> int:
        return self.pt_seq_len or self.img_size // self.patch_size

    def replace(self, **changes: Any) -> FlowConfig:
        return dataclasses.replace(self, **changes)

    # ---- serialisation -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        """Build from reference constructor kwargs (golden JSON) or our own JSON."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            key = _YAML_RENAMES.get(key, key)
            if key in _REQUIRED and value not in _REQUIRED[key]:
                raise ValueError(f"unsupported model switch {key}={value!r}")
            if key in known:
                kwargs[key] = value
            elif key not in _IGNORED and key not in _REQUIRED:
                raise ValueError(f"unknown model config field {key!r}")
        for key in (
            "rope",
            "sos",
            "cond_top_only",
            "use_softplus",
            "use_final_norm",
            "learnable_self_denoiser",
            "conditional_denoiser",
            "shallow_block_local",
        ):
            if key in kwargs:
                kwargs[key] = bool(kwargs[key])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers_per_block"] = list(self.layers_per_block)
        d.pop("extra")
        return d

    @classmethod
    def from_json(cls, path: str | Path) -> FlowConfig:
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data.get("config", data.get("flow", data)))

    @classmethod
    def from_reference_args(
        cls, args: dict[str, Any], txt_dim: int, vae_factor: int = 16
    ) -> FlowConfig:
        """From the reference's training arguments (its YAML's `arguments:`, merged), as its
        `setup_transformer` builds the model: img_size in pixels (the latent side is img_size //
        vae_factor), arguments left out take train.py's defaults, the rest are training-only."""
        a = {**_REFERENCE_DEFAULTS, **args}
        kwargs = {key: _typed(key, a.get(key)) for key in _REFERENCE_MODEL_ARGS}
        lpb = a["layers_per_block"]
        lpb = [
            _typed("layers_per_block", n)
            for n in (lpb if isinstance(lpb, list) else str(lpb).split())
        ]
        img_size = _typed("img_size", a["img_size"])
        if img_size % vae_factor:
            raise ValueError(f"img_size {img_size} is not a multiple of the VAE's {vae_factor}")
        kwargs.update(
            in_channels=_typed("channel_size", a["channel_size"]),
            img_size=img_size // vae_factor,
            num_blocks=_typed("blocks", a["blocks"]) if len(lpb) == 1 else len(lpb),
            layers_per_block=lpb,
            txt_dim=txt_dim,
        )
        return cls.from_dict(kwargs)

    @classmethod
    def from_reference_yaml(
        cls, path: str | Path, txt_dim: int = 2048, vae_factor: int = 16
    ) -> FlowConfig:
        """Read a reference training YAML (`arguments:` list of one-key maps)."""
        import yaml

        raw = yaml.safe_load(Path(path).read_text())
        args: dict[str, Any] = {}
        for item in raw["arguments"]:
            args.update(item)
        return cls.from_reference_args(args, txt_dim, vae_factor)


# the reference train.py parser's defaults for the model arguments a YAML may leave out
_REFERENCE_DEFAULTS: dict[str, Any] = {
    "img_size": 32,
    "channel_size": 3,
    "txt_size": 0,
    "patch_size": 4,
    "channels": 512,
    "top_block_channels": None,
    "blocks": 4,
    "layers_per_block": 8,
    "rope": 0,
    "pt_seq_len": None,
    "head_dim": 64,
    "num_heads": None,
    "num_kv_heads": None,
    "use_swiglu": 0,
    "use_bias": 1,
    "use_qk_norm": 0,
    "use_post_norm": 0,
    "norm_type": "layer_norm",
    "use_pretrained_lm": None,
    "use_mm_attn": 0,
    "sos": 0,
    "cond_top_only": 0,
    "use_softplus": 0,
    "use_final_norm": 0,
    "soft_clip": 0.0,
    "seq_order": "R2L",
    "learnable_self_denoiser": 0,
    "conditional_denoiser": 0,
    "temporal_causal": 0,
    "shallow_block_local": 0,
    "denoiser_window": None,
    "local_attn_window": None,
}
# reference arguments that reach the model's constructor under their own names
_REFERENCE_MODEL_ARGS = tuple(
    k
    for k in _REFERENCE_DEFAULTS
    if k not in ("img_size", "channel_size", "blocks", "layers_per_block")
)
_STRINGS = {"norm_type", "seq_order", "use_pretrained_lm"}


def _typed(key: str, value: Any) -> Any:
    """A reference argument converted as its argparse type would (int, float or string)."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if key in _STRINGS:
        return str(value)
    try:
        return float(value) if key == "soft_clip" else _int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None


def _int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)
