"""The demo bundle: a JSON description beside a safetensors file holding the flow (`flow.`), the
codec (`codec.`) and the text encoder (`text.`). Read here; written by engine.demo.bundle_write."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.api import EngineError
from engine.checkpoint import build_model, open_state_dict
from engine.config import FlowConfig
from engine.device import pick_device, pick_dtype
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
    try:
        state = load_file(str(weights))
        codec.load_state_dict(split_state(state, "codec."))
        text.load_state_dict(split_state(state, "text."))
    except Exception as exc:  # missing file, truncated file, missing or mis-shaped tensors
        raise EngineError(f"cannot load the demo model's codec/text weights: {exc}") from exc
    return codec.eval().requires_grad_(False), text.eval().requires_grad_(False)


def _companions(meta: dict, json_path: Path, weights: Path):
    """The codec and text encoder a bundle names: the PCA/word pair of the first demo model, or the
    learned autoencoder/transformer pair."""
    if meta.get("codec", {}).get("kind") == "pca":
        from .pca import PCACodec, WordText

        codec = PCACodec(int(meta["codec"]["components"]))
        text = WordText(int(meta["text"]["dim"]), int(meta["text"]["max_tokens"]))
        try:
            state = load_file(str(weights))
            codec.load_state_dict(split_state(state, "codec."))
            text.load_state_dict(split_state(state, "text."))
        except Exception as exc:
            raise EngineError(f"cannot load the demo codec/text weights: {exc}") from exc
        return codec, text
    return load_demo_components(json_path, weights)


def sampling_settings(meta: dict) -> DemoSettings:
    """A bundle JSON's sampling settings; ValueError / TypeError where they are bad."""
    return DemoSettings(
        train_latent_frames=meta.get("train_frames", 17), **meta.get("sampling", {})
    )


def load_bundle(json_path: Path, device: str = "auto", dtype: str = "auto") -> DemoPipeline:
    """A demo bundle as a pipeline on `device` in `dtype`; EngineError where anything is bad."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise EngineError(f"model description not found: {json_path}")
    try:
        meta = json.loads(json_path.read_text())
        cfg = FlowConfig.from_dict(meta["flow"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{json_path.name} is not a valid model description: {exc}") from exc
    try:
        settings = sampling_settings(meta)
    except (ValueError, TypeError) as exc:
        raise EngineError(f"{json_path.name} has bad sampling settings: {exc}") from exc
    weights = json_path.with_suffix(".safetensors")
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    flow = build_model(cfg, open_state_dict(weights), dev, dt, prefix="flow.")
    codec, text = _companions(meta, json_path, weights)
    info = model_info(
        meta.get("name", json_path.stem),
        flow,
        meta["width"],
        meta["height"],
        meta.get("fps", 16),
        meta.get("train_frames", 17),
        settings.temperature,
    )
    log.info("loaded %s (%d parameters) on %s", info.name, info.parameters, dev)
    return DemoPipeline(flow, codec.to(dev).eval(), text.to(dev).eval(), info, settings)
