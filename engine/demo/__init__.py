"""The built-in Shapes-world demo model's codec and text encoder."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from engine.api import EngineError

from .codec import DemoCodec
from .text import DemoTextEncoder


def build_components(meta: dict) -> tuple[DemoCodec, DemoTextEncoder]:
    codec = DemoCodec(int(meta["codec"]["components"]))
    text = DemoTextEncoder(int(meta["text"]["dim"]), int(meta["text"]["max_tokens"]))
    return codec, text


def load_demo_components(json_path: Path, weights: Path) -> tuple[DemoCodec, DemoTextEncoder]:
    meta = json.loads(Path(json_path).read_text())
    codec, text = build_components(meta)
    try:
        state = load_file(str(weights))
        codec.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("codec.")})
        text.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")})
    except Exception as exc:
        raise EngineError(f"cannot load the demo model's codec/text weights: {exc}") from exc
    return codec, text
