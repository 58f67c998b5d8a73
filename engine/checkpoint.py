"""Strict checkpoint loading with the reference's tensor names (safetensors, or .pth weights-only)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .api import EngineError
from .config import FlowConfig
from .model import StarFlow

log = logging.getLogger(__name__)

# buffers the reference registers but that hold no information: skipped by name
DEPRECATED = re.compile(r"^(var|blocks\.\d+\.attn_mask|feat_rope\.freqs_(cos|sin))$")


def deprecated_shapes(cfg: FlowConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the reference's deprecated buffers for a configuration."""
    pt = cfg.rope_seq_len
    side = pt * pt + cfg.txt_size
    shapes: dict[str, tuple[int, ...]] = {"var": (pt * pt, cfg.token_channels)}
    shapes.update({f"blocks.{i}.attn_mask": (side, side) for i in range(cfg.num_blocks)})
    rope = (cfg.txt_size + pt * pt, cfg.head_dim)
    shapes.update({"feat_rope.freqs_cos": rope, "feat_rope.freqs_sin": rope})
    return shapes


def expected_manifest(cfg: FlowConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape a reference checkpoint of this configuration holds."""
    with torch.device("meta"):
        model = StarFlow(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes.update(deprecated_shapes(cfg))
    return shapes


def open_state_dict(path: str | Path) -> Mapping[str, torch.Tensor]:
    """Lazily open a .safetensors file, or a .pth state dict with weights_only=True (memory-mapped)."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"model file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            handle = safe_open(str(path), framework="pt")
            return {k: handle.get_slice(k) for k in handle.keys()}  # noqa: SIM118
        if path.suffix in (".pth", ".pt", ".bin"):
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if not isinstance(state, Mapping):
                raise EngineError(f"{path.name} is not a state dict (found {type(state).__name__})")
            return (
                state.get("model", state)
                if "model" in state and isinstance(state["model"], Mapping)
                else state
            )
    except EngineError:
        raise
    except Exception as exc:  # truncated/corrupt files raise many different errors
        raise EngineError(f"cannot read model file {path.name}: {exc}") from exc
    raise EngineError(f"unsupported model file type {path.suffix!r} (use .safetensors or .pth)")


def _shape(t) -> tuple[int, ...]:
    return tuple(t.get_shape()) if hasattr(t, "get_shape") else tuple(t.shape)


def _tensor(t) -> torch.Tensor:
    return t[:] if hasattr(t, "get_shape") else t


def load_into(model: StarFlow, state: Mapping[str, torch.Tensor], prefix: str = "") -> None:
    """Copy tensors named as the reference into `model`, one at a time, in the model's dtype.

    Deprecated buffers are skipped by name; any other missing, unexpected or mis-shaped tensor
    raises an EngineError naming it. Nothing is copied unless every name and shape checks out.
    """
    own = model.state_dict()
    given = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    skipped = sorted(k for k in given if DEPRECATED.match(k))
    given = {k: v for k, v in given.items() if not DEPRECATED.match(k)}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    wrong = [
        f"{k}: file {_shape(given[k])} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(given))
        if _shape(given[k]) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors ({len(missing)}): {', '.join(missing[:8])}")
    if unexpected:
        problems.append(f"unexpected tensors ({len(unexpected)}): {', '.join(unexpected[:8])}")
    if wrong:
        problems.append(f"mis-shaped tensors ({len(wrong)}): {'; '.join(wrong[:8])}")
    if problems:
        raise EngineError(
            "checkpoint does not match the model configuration: " + " | ".join(problems)
        )
    if skipped:
        log.info("skipped deprecated buffers: %s", ", ".join(skipped))
    with torch.no_grad():
        for name, target in own.items():
            target.copy_(_tensor(given[name]).to(target.dtype))


def build_model(
    cfg: FlowConfig,
    weights: str | Path | Mapping[str, torch.Tensor] | None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    prefix: str = "",
) -> StarFlow:
    """Build directly in `dtype` on `device` (no fp32 copy of a large model) and load weights."""
    with torch.device(device):
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = StarFlow(cfg)
        finally:
            torch.set_default_dtype(default)
    if weights is not None:
        state = weights if isinstance(weights, Mapping) else open_state_dict(weights)
        load_into(model, state, prefix)
    return model.eval().requires_grad_(False)


def convert_to_safetensors(src: str | Path, dst: str | Path | None = None) -> Path:
    """Write a .pth state dict as .safetensors (deprecated buffers dropped), atomically."""
    from safetensors.torch import save_file

    src = Path(src)
    dst = Path(dst) if dst else src.with_suffix(".safetensors")
    state = open_state_dict(src)
    tensors = {k: _tensor(v).contiguous() for k, v in state.items() if not DEPRECATED.match(k)}
    tmp = dst.with_name(dst.name + ".part")
    save_file(tensors, str(tmp))
    tmp.replace(dst)
    return dst
