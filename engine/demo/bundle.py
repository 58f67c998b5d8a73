"""The demo bundle: a JSON description beside a safetensors file holding the flow (`flow.`), the
codec (`codec.`) and the text encoder (`text.`). Read here; written by engine.demo.bundle_write."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.api import EngineError
from engine.checkpoint import build_model, check_finite, open_state_dict, safetensors_header
from engine.config import FlowConfig
from engine.device import pick_device, pick_dtype
from engine.limits import MAX_FRAMES, check_frame_size, check_memory, estimate_bytes
from engine.pipeline import model_info

from .codec import DemoCodec
from .pipeline import DemoPipeline, DemoSettings
from .text import DemoTextEncoder

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "models"
DEMO_MODEL = RESOURCES / "shapes_demo.json"


def split_state(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of `state` under `prefix`, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_demo_components(
    json_path: str | Path, weights: str | Path
) -> tuple[DemoCodec, DemoTextEncoder]:
    """The codec and text encoder of a demo bundle (JSON description + safetensors), on the CPU in
    eval mode. Raises EngineError naming what is missing or does not fit."""
    try:
        meta = json.loads(Path(json_path).read_text())
        codec = DemoCodec.from_config(meta["codec"])
        text = DemoTextEncoder.from_config(meta["text"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{Path(json_path).name}: bad codec/text description: {exc}") from exc
    _load_companions(codec, text, weights)
    return codec.eval().requires_grad_(False), text.eval().requires_grad_(False)


def _load_companions(codec: torch.nn.Module, text: torch.nn.Module, weights: str | Path) -> None:
    """The codec's and text encoder's tensors from the bundle's safetensors, all finite."""
    safetensors_header(weights)
    try:
        state = load_file(str(weights))
        codec.load_state_dict(split_state(state, "codec."))
        text.load_state_dict(split_state(state, "text."))
    except Exception as exc:  # missing file, truncated file, missing or mis-shaped tensors
        raise EngineError(f"cannot load the demo model's codec/text weights: {exc}") from exc
    check_finite(split_state(state, "codec."), f"{Path(weights).name} (codec)")
    check_finite(split_state(state, "text."), f"{Path(weights).name} (text encoder)")


def _companions(meta: dict, json_path: Path, weights: Path):
    """The codec and text encoder a bundle names: the PCA/word pair of the first demo model, or the
    learned autoencoder/transformer pair."""
    if meta.get("codec", {}).get("kind") == "pca":
        from .pca import PCACodec, WordText

        try:
            codec = PCACodec(int(meta["codec"]["components"]))
            text = WordText(int(meta["text"]["dim"]), int(meta["text"]["max_tokens"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(f"{json_path.name}: bad codec/text description: {exc}") from exc
        _load_companions(codec, text, weights)
        return codec, text
    return load_demo_components(json_path, weights)


# a bundle's sampling fields: (kind, smallest, largest); None is allowed where the default is
SAMPLING_FIELDS = {
    "jacobi_block_size": (int, 1, 4096),
    "jacobi_max_iter": (int, 1, 4096),
    "jacobi_threshold": (float, 0.0, 1.0),
    "context_noise": (float, 0.0, 10.0),
    "v2v_segment": (int, 0, MAX_FRAMES),
    "extend_context": (int, 0, MAX_FRAMES),
    "v2v_carry": (int, 0, MAX_FRAMES),
    "window": (int, 1, MAX_FRAMES),
    "long_context": (int, 0, MAX_FRAMES),
    "temperature": (float, 0.0, 10.0),
}


def check_number(value: object, where: str, kind: type, low: float, high: float) -> None:
    """ValueError naming `where` unless `value` is a `kind` (int: whole) from `low` to `high`."""
    whole = kind is int
    ok = not isinstance(value, bool) and isinstance(value, int if whole else int | float)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        wanted = "a whole number" if whole else "a number"
        raise ValueError(f"{where} must be {wanted} from {low:g} to {high:g}, got {value!r}")


def sampling_settings(meta: dict) -> DemoSettings:
    """A bundle JSON's sampling settings; ValueError / TypeError naming the field where bad."""
    train_frames = meta.get("train_frames", 17)
    check_number(train_frames, "train_frames", int, 1, MAX_FRAMES)
    sampling = meta.get("sampling", {})
    if not isinstance(sampling, dict):
        raise TypeError(f"sampling must be an object, got {type(sampling).__name__}")
    for key, value in sampling.items():
        if key in SAMPLING_FIELDS and value is not None:
            check_number(value, f"sampling.{key}", *SAMPLING_FIELDS[key])
    return DemoSettings(train_latent_frames=train_frames, **sampling)


def check_frame_fields(meta: dict) -> None:
    """The frame fields of a bundle JSON (the size is checked against the codec once built)."""
    check_number(meta.get("fps", 16), "fps", float, 1, 240)
    for side in ("width", "height"):
        if side not in meta:
            raise KeyError(side)


def load_bundle(json_path: Path, device: str = "auto", dtype: str = "auto") -> DemoPipeline:
    """A demo bundle as a pipeline on `device` in `dtype`; EngineError where anything is bad."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise EngineError(f"model description not found: {json_path}")
    try:
        meta = json.loads(json_path.read_text())
        if not isinstance(meta, dict):
            raise TypeError(f"a JSON object is needed, got {type(meta).__name__}")
        cfg = FlowConfig.from_dict(meta["flow"])
        check_frame_fields(meta)
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{json_path.name} is not a valid model description: {exc}") from exc
    try:
        settings = sampling_settings(meta)
    except (ValueError, TypeError) as exc:
        raise EngineError(f"{json_path.name} has bad sampling settings: {exc}") from exc
    weights = json_path.with_suffix(".safetensors")
    codec, text = _companions(meta, json_path, weights)
    check_frame_size(meta["width"], meta["height"], codec.spatial_factor, json_path.name)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    state = open_state_dict(weights)
    try:
        flow = build_model(cfg, state, dev, dt, prefix="flow.")
    except EngineError as exc:
        raise EngineError(f"{weights.name}: {exc}") from exc
    info = model_info(
        meta.get("name", json_path.stem),
        flow,
        meta["width"],
        meta["height"],
        meta.get("fps", 16),
        settings.train_latent_frames,
        settings.temperature,
    )
    pipeline = DemoPipeline(flow, codec.to(dev).eval(), text.to(dev).eval(), info, settings)
    frames = info.train_frames
    check_memory(
        estimate_bytes(pipeline, frames),
        dev,
        f"{json_path.name}: a {frames}-frame clip at {info.width}x{info.height}",
    )
    log.info("loaded %s (%d parameters) on %s", info.name, info.parameters, dev)
    return pipeline
