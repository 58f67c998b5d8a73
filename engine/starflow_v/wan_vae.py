"""The reference's `Wan2.2_VAE.pth` (Wan2.2's own module names) as a diffusers AutoencoderKLWan folder.

    folder = convert_once(Path("Wan2.2_VAE.pth"))   # -> Wan2.2_VAE-diffusers/ beside it, reused later
    check_vae_folder(folder)                          # every tensor name and shape, from the header

The name map is derived from the diffusers model's own names (built on the meta device), so every
tensor the model needs has exactly one original name; a file with any name missing, extra or
misshapen is refused with all of them listed. Original -> diffusers:

    conv1 / conv2                                   -> quant_conv / post_quant_conv
    {encoder,decoder}.conv1                         -> .conv_in
    {encoder,decoder}.head.0 / head.2               -> .norm_out / .conv_out
    .middle.0 / .middle.2 (residual blocks)         -> .mid_block.resnets.0 / .1
    .middle.1 (attention)                           -> .mid_block.attentions.0
    encoder.downsamples.i.downsamples.j             -> encoder.down_blocks.i.resnets.j
    encoder.downsamples.i.downsamples.n (n resnets) -> encoder.down_blocks.i.downsampler
    decoder.upsamples.i.upsamples.j / .n            -> decoder.up_blocks.i.resnets.j / .upsampler
    residual.0 / .2 / .3 / .6, shortcut             -> norm1 / conv1 / norm2 / conv2, conv_shortcut
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..api import EngineError
from ..checkpoint import open_state_dict
from .hub import check_disk_space, compare_shapes, safetensors_shapes
from .vae import WAN22_MEAN, WAN22_STD

log = logging.getLogger(__name__)

WEIGHTS = "diffusion_pytorch_model.safetensors"
# the Wan2.2 VAE (Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json); other fields: diffusers' defaults
WAN22_CONFIG: dict[str, Any] = dict(
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    is_residual=True,
    in_channels=12,
    out_channels=12,
    patch_size=2,
    scale_factor_spatial=16,
    scale_factor_temporal=4,
    clip_output=False,
    latents_mean=list(WAN22_MEAN),
    latents_std=list(WAN22_STD),
)

_RESIDUAL = {
    "norm1": "residual.0",
    "conv1": "residual.2",
    "norm2": "residual.3",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}
_TOP = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
_ENDS = {"conv_in": "conv1", "norm_out": "head.0", "conv_out": "head.2"}


def _resnet(rest: str) -> str:
    layer, _, tail = rest.partition(".")
    return f"{_RESIDUAL[layer]}.{tail}"


def _original(name: str, resnets: dict[tuple[str, str], int]) -> str:
    """One diffusers tensor name -> its name in Wan2.2's original VAE module."""
    head, _, rest = name.partition(".")
    if head in _TOP:
        return f"{_TOP[head]}.{rest}"
    layer, _, tail = rest.partition(".")
    if layer in _ENDS:
        return f"{head}.{_ENDS[layer]}.{tail}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", rest):
        return f"{head}.middle.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", rest):
        return f"{head}.middle.1.{m[1]}"
    if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        group = f"{m[1]}samples"
        return f"{head}.{group}.{m[2]}.{group}.{m[3]}.{_resnet(m[4])}"
    if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(?:down|up)sampler\.(.+)", rest):
        group = f"{m[1]}samples"
        return f"{head}.{group}.{m[2]}.{group}.{resnets[(head, m[2])]}.{m[3]}"
    raise EngineError(f"no Wan2.2 name for the diffusers tensor {name}")


def original_names(names: list[str]) -> dict[str, str]:
    """diffusers name -> original name for every tensor of an AutoencoderKLWan."""
    resnets: dict[tuple[str, str], int] = {}
    for name in names:
        if m := re.match(r"(encoder|decoder)\.(?:down|up)_blocks\.(\d+)\.resnets\.(\d+)\.", name):
            key = (m[1], m[2])
            resnets[key] = max(resnets.get(key, 0), int(m[3]) + 1)
    mapping = {name: _original(name, resnets) for name in names}
    if len(set(mapping.values())) != len(mapping):
        raise EngineError("the Wan2.2 name map is not one to one")  # a diffusers layout change
    return mapping


def meta_model(config: dict[str, Any]) -> torch.nn.Module:
    """An AutoencoderKLWan of `config` with no storage (names and shapes only)."""
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        return AutoencoderKLWan.from_config(config)


def _expected(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in meta_model(config).state_dict().items()}


def convert(pth: Path, out: Path, config: dict[str, Any] | None = None) -> Path:
    """Wan2.2_VAE.pth (weights-only load) -> a diffusers folder `out` (config.json + safetensors)."""
    from safetensors.torch import save_file

    config = dict(config or WAN22_CONFIG)
    expected = _expected(config)
    to_original = original_names(list(expected))
    state = open_state_dict(pth)
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    report = compare_shapes(shapes, {to_original[k]: s for k, s in expected.items()})
    if not report.ok or len(shapes) != len(state):
        raise EngineError(f"{pth.name} is not the Wan2.2 VAE: {report.describe()}")
    check_disk_space(out.parent, pth.stat().st_size)
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {k: state[o].contiguous() for k, o in to_original.items()}
    save_file(tensors, str(tmp / WEIGHTS))
    meta_model(config).save_config(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    log.info("converted %s into %s", pth.name, out)
    return out


def converted_folder(pth: Path) -> Path:
    return pth.with_name(pth.stem + "-diffusers")


def convert_once(pth: Path, config: dict[str, Any] | None = None) -> Path:
    """The diffusers folder beside `pth`, converted unless a complete, newer one is there."""
    out = converted_folder(pth)
    weights = out / WEIGHTS
    if weights.exists() and weights.stat().st_mtime >= pth.stat().st_mtime:
        try:
            return check_vae_folder(out)
        except EngineError as exc:
            log.warning("converting again: %s", exc)
    return check_vae_folder(convert(pth, out, config))


def check_vae_folder(folder: Path) -> Path:
    """A diffusers Wan2.2 VAE folder whose weights match its config tensor by tensor."""
    config = json.loads((folder / "config.json").read_text())
    if config.get("z_dim") != 48 or config.get("patch_size") != 2:
        raise EngineError(
            f"{folder} is not a Wan2.2 VAE (z_dim {config.get('z_dim')}, patch_size "
            f"{config.get('patch_size')}; the 7B needs 48 and 2)"
        )
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise EngineError(f"{folder} has no {WEIGHTS}")
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    report = compare_shapes(safetensors_shapes(weights), _expected(config))
    if not report.ok:
        raise EngineError(f"{weights} does not match its config: {report.describe()}")
    return folder
