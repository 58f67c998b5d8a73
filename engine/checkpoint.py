"""Strict checkpoint loading with the reference's tensor names (safetensors, or .pth weights-only)."""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import zipfile
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


MAX_HEADER = 100_000_000  # bytes of a safetensors JSON header (the format's own limit)


def safetensors_header(path: str | Path) -> dict[str, dict]:
    """A .safetensors file's header, checked: a JSON object of tensors, each with a dtype, a
    shape of whole numbers and data_offsets inside the file. EngineError naming the file and the
    first tensor or field that is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 2 <= n <= min(MAX_HEADER, size - 8):
                raise EngineError(f"{path.name} is not a safetensors file or is truncated")
            header = json.loads(f.read(n))
    except OSError as exc:
        raise EngineError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise EngineError(f"{path.name}: the safetensors header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise EngineError(
            f"{path.name}: the safetensors header is a JSON {type(header).__name__}, not an object"
        )
    data = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise EngineError(f"{path.name}: tensor {name!r} is not described by an object")
        for field in ("dtype", "shape", "data_offsets"):
            if field not in entry:
                raise EngineError(f"{path.name}: tensor {name!r} has no {field}")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or not all(_count(d) for d in shape):
            raise EngineError(f"{path.name}: tensor {name!r} has a bad shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_count(o) for o in offsets)
            or not offsets[0] <= offsets[1] <= data
        ):
            raise EngineError(
                f"{path.name} is truncated or corrupt: tensor {name!r} has data_offsets "
                f"{offsets!r} outside the file's {data} bytes of data"
            )
    return header


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def open_state_dict(path: str | Path) -> Mapping[str, torch.Tensor]:
    """Lazily open a .safetensors file (its header checked first), or a .pth state dict with
    weights_only=True (memory-mapped when it is in the zip format; an old-format file is read
    whole)."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"model file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            safetensors_header(path)
            handle = safe_open(str(path), framework="pt")
            return {k: handle.get_slice(k) for k in handle.keys()}  # noqa: SIM118
        if path.suffix in (".pth", ".pt", ".bin"):
            mmap = zipfile.is_zipfile(path)  # torch's legacy format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
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


def non_tensors(state: Mapping[str, object]) -> list[str]:
    """The names in a state dict whose values are not tensors (a step count, optimizer state)."""
    return sorted(
        k for k, v in state.items() if not (hasattr(v, "get_shape") or isinstance(v, torch.Tensor))
    )


def check_finite(tensors: Mapping[str, torch.Tensor], source: str = "") -> None:
    """EngineError naming the first tensors holding NaN or infinity (they give black frames)."""
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        where = f"{source}: " if source else ""
        raise EngineError(
            f"{where}NaN or infinite values in {len(bad)} tensor(s): {', '.join(bad[:4])}"
        )


def load_into(model: StarFlow, state: Mapping[str, torch.Tensor], prefix: str = "") -> None:
    """Copy tensors named as the reference into `model`, one at a time, in the model's dtype.

    Deprecated buffers are skipped by name; any other missing, unexpected or mis-shaped tensor
    raises an EngineError naming it. Nothing is copied unless every name and shape checks out.
    """
    own = model.state_dict()
    given = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    odd = non_tensors(given)
    if odd:
        raise EngineError(f"not tensors ({len(odd)}): {', '.join(odd[:8])}")
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
    check_finite(own)


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
    """Write a .pth state dict as .safetensors (deprecated buffers dropped), atomically.

    EngineError (nothing written, no temporary left) where the output is the input, the state
    dict holds anything but tensors, or the folder is missing, read-only or full."""
    from safetensors.torch import save_file

    from .media import disk_error, same_file, temp_beside, user_mode

    src = Path(src)
    dst = Path(dst) if dst else src.with_suffix(".safetensors")
    if same_file(src, dst):
        raise EngineError(f"--out {dst} is the checkpoint being converted; choose another name")
    if not dst.parent.is_dir():
        raise EngineError(f"folder not found: {dst.parent}")
    state = open_state_dict(src)
    odd = non_tensors(state)
    if odd:
        raise EngineError(
            f"{src.name} holds entries that are not tensors ({len(odd)}): {', '.join(odd[:8])}"
        )
    tensors = {k: _tensor(v).contiguous() for k, v in state.items() if not DEPRECATED.match(k)}
    tmp = None
    try:
        tmp = temp_beside(dst)
        save_file(tensors, str(tmp))
        user_mode(tmp)  # safetensors writes its files 0600
        os.replace(tmp, dst)
    except OSError as exc:
        raise disk_error(exc, dst) from exc
    except Exception as exc:  # safetensors reports a failed write as its own error
        raise EngineError(f"cannot write {dst}: {exc}") from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return dst
