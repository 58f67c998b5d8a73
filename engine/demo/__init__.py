"""The built-in Shapes-world demo model's codec and text encoder (their weights live in the
demo bundle's safetensors under the `codec.` and `text.` prefixes, the flow's under `flow.`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.api import EngineError

from .codec import CodecConfig, DemoCodec
from .text import DemoTextEncoder, TextConfig

__all__ = [
    "CodecConfig",
    "DemoCodec",
    "DemoTextEncoder",
    "TextConfig",
    "load_demo_components",
    "split_state",
]


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
