"""A STARFlow-V checkpoint's configuration: the reference's YAML or this project's JSON.

    spec = read_model_config("my_model.yaml")     # ModelSpec: flow config, frame side, companions
    spec = config_for("my_model.safetensors")     # my_model.yaml/.yml/.json beside it, else the 7B's

The reference YAML (configs/starflow-v_7B_t2v_caus_480p.yaml) lists its training arguments as
one-key maps under `arguments:`; the model's are read as its sample.py reads them (img_size in
pixels, latent side img_size // 16; `text` names the encoder whose width is txt_dim; `vae` is
"repo[:temporal scale]"). This project's JSON holds FlowConfig's fields (img_size in latents),
at the top or under "config" as in the shipped 7B manifest, with optional "text" and "vae".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import EngineError
from ..config import FlowConfig
from .hub import MANIFEST_PATH
from .sizes import VAE_SPATIAL
from .text import T5_REPO
from .vae import TEMPORAL_SCALE, WAN22_REPO

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
# hidden size of the text encoders a reference config may name (txt_dim); a local folder's own
# config.json is read instead
TEXT_WIDTHS = {
    "google/flan-t5-small": 512,
    "google/flan-t5-base": 768,
    "google/flan-t5-large": 1024,
    "google/flan-t5-xl": 2048,
    "google/flan-t5-xxl": 4096,
}


@dataclass(frozen=True)
class ModelSpec:
    """What a configuration file says about a checkpoint."""

    flow: FlowConfig
    side: int  # pixels: frames keep the area of a side x side square (the reference's img_size)
    name: str = "STARFlow-V 7B"
    text_encoder: str = T5_REPO
    vae: str = WAN22_REPO
    vae_temporal_scale: float = TEMPORAL_SCALE


def builtin_spec() -> ModelSpec:
    """The released 7B (the shipped manifest's configuration)."""
    return read_model_config(MANIFEST_PATH, name="STARFlow-V 7B")


def read_model_config(path: str | Path, name: str | None = None) -> ModelSpec:
    """Read a .yaml/.yml (reference) or .json (ours) configuration; a one-line EngineError naming
    the file and the field when it does not describe a model this engine builds."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EngineError(f"model config not found: {path}")
    name = name or f"STARFlow-V ({path.stem})"
    try:
        if path.suffix in (".yaml", ".yml"):
            return _from_reference(_reference_args(path), name)
        if path.suffix == ".json":
            return _from_json(_json(path), name)
    except EngineError:
        raise
    except KeyError as exc:
        raise EngineError(f"model config {path.name}: missing field {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - YAML/JSON syntax, wrong types, unsupported switches
        message = " ".join(str(exc).split())  # YAML errors span lines
        raise EngineError(f"model config {path.name}: {message}") from exc
    raise EngineError(f"model config {path.name}: use a .yaml, .yml or .json file")


def is_config_json(path: Path) -> bool:
    """A JSON file holding a STARFlow-V configuration (not a demo bundle's description)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and ("config" in data or "in_channels" in data)


def beside(checkpoint: Path) -> Path | None:
    """<checkpoint>.yaml, .yml or .json (a configuration, not a demo bundle's description)."""
    for suffix in CONFIG_SUFFIXES:
        candidate = checkpoint.with_suffix(suffix)
        if candidate.is_file() and (suffix != ".json" or is_config_json(candidate)):
            return candidate
    return None


def config_for(model: str | Path, given: str | Path | None = None) -> ModelSpec:
    """The configuration of `model`: `given`, else one beside the checkpoint, else the 7B's."""
    found = Path(given) if given else beside(Path(model).expanduser())
    return read_model_config(found) if found is not None else builtin_spec()


def _reference_args(path: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ValueError(f"not valid YAML at line {mark.line + 1}: {exc.problem}") from None
    items = raw.get("arguments") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("'arguments' must be a list of one-key maps, as the reference's configs")
    args: dict[str, Any] = {}
    for item in items:
        args.update(item)
    return args


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON at line {exc.lineno}: {exc.msg}") from None


def _from_reference(args: dict[str, Any], name: str) -> ModelSpec:
    text = str(args.get("text") or T5_REPO)
    vae, scale = _vae(str(args.get("vae") or f"{WAN22_REPO}:{TEMPORAL_SCALE}"))
    flow = FlowConfig.from_reference_args(args, _text_width(text), VAE_SPATIAL)
    return ModelSpec(flow, flow.img_size * VAE_SPATIAL, name, text, vae, scale)


def _from_json(data: dict[str, Any], name: str) -> ModelSpec:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object of FlowConfig fields")
    text = str(data.get("text") or T5_REPO)
    vae, scale = _vae(str(data.get("vae") or f"{WAN22_REPO}:{TEMPORAL_SCALE}"))
    fields = data["config"] if "config" in data else data
    fields = {k: v for k, v in fields.items() if k not in ("text", "vae")}
    flow = FlowConfig.from_dict(fields)
    return ModelSpec(flow, flow.img_size * VAE_SPATIAL, name, text, vae, scale)


def _vae(value: str) -> tuple[str, float]:
    """'repo[:temporal scale]' as the reference writes it -> (repo or folder, scale)."""
    repo, _, tail = value.rpartition(":")
    try:
        return (repo, float(tail)) if repo else (value, TEMPORAL_SCALE)
    except ValueError:  # a colon that is part of the name (a Windows drive)
        return value, TEMPORAL_SCALE


def _text_width(text: str) -> int:
    """txt_dim: the text encoder's hidden size (a local folder's config.json, else a known repo)."""
    local = Path(text).expanduser() / "config.json"
    if local.is_file():
        return int(json.loads(local.read_text())["d_model"])
    if text in TEXT_WIDTHS:
        return TEXT_WIDTHS[text]
    raise ValueError(f"text: unknown text encoder {text!r} (give a local folder or a flan-t5 repo)")
