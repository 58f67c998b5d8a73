"""Strict loading by reference names, the 7B manifest, conversion, bad files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from conftest import REPO_ROOT
from engine.api import EngineError
from engine.checkpoint import (
    build_model,
    convert_to_safetensors,
    deprecated_shapes,
    expected_manifest,
    open_state_dict,
)
from engine.config import FlowConfig
from engine_utils import random_model, tiny_config

MANIFEST = REPO_ROOT.parent / "shared" / "reference" / "starflow-v_7B_manifest.json"
# the 7B training arguments in the reference YAML's layout (a list of one-key maps)
YAML_7B = """arguments:
- img_size: 640
- txt_size: 256
- vid_size: '81:16'
- channel_size: 48
- patch_size: 1
- channels: 3072
- top_block_channels: 4096
- blocks: 6
- layers_per_block: 2 2 2 2 2 24
- noise_std: 0.5
- rope: 1
- sos: 1
- seq_order: L2R
- pt_seq_len: 32
- use_softplus: 1
- cond_top_only: 1
- use_final_norm: 1
- learnable_self_denoiser: 1
- conditional_denoiser: 1
- denoiser_window: 10
- temporal_causal: 2
- shallow_block_local: 1
- soft_clip: 4
"""


def reference_state(cfg: FlowConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    state = dict(random_model(cfg, seed).state_dict())
    state.update({k: torch.zeros(s) for k, s in deprecated_shapes(cfg).items()})
    return state


def test_7b_configuration_gives_exactly_the_official_manifest():
    manifest = json.loads(MANIFEST.read_text())
    cfg = FlowConfig.from_dict(manifest["config"])
    ours = expected_manifest(cfg)
    theirs = {k: tuple(v) for k, v in manifest["parameters"].items()}
    assert sorted(set(ours) ^ set(theirs)) == []
    assert {k: v for k, v in ours.items() if theirs[k] != v} == {}
    params = sum(torch.Size(s).numel() for k, s in ours.items() if k not in deprecated_shapes(cfg))
    assert params == manifest["total_parameters"]


def test_reference_yaml_reads_as_the_manifest_configuration(tmp_path):
    manifest = json.loads(MANIFEST.read_text())
    (tmp_path / "7b.yaml").write_text(YAML_7B)
    assert FlowConfig.from_reference_yaml(tmp_path / "7b.yaml") == FlowConfig.from_dict(
        manifest["config"]
    )


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_round_trip_both_formats_skipping_deprecated_buffers(tmp_path, suffix, caplog):
    cfg = tiny_config()
    state = reference_state(cfg)
    path = tmp_path / f"model{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    with caplog.at_level("INFO"):
        model = build_model(cfg, path)
    assert "attn_mask" in caplog.text and "feat_rope.freqs_cos" in caplog.text
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_load_in_bf16_builds_directly_in_bf16(tmp_path):
    cfg = tiny_config()
    state = reference_state(cfg)
    save_file(state, str(tmp_path / "m.safetensors"))
    model = build_model(cfg, tmp_path / "m.safetensors", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    w = "blocks.0.proj_in.weight"
    assert torch.equal(model.state_dict()[w], state[w].bfloat16())


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda s: s.pop("blocks.2.attn_blocks.1.mlp.main.0.weight"),
            "missing tensors.*blocks.2.attn_blocks.1.mlp.main.0.weight",
        ),
        (
            lambda s: s.update({"blocks.9.extra": torch.zeros(2)}),
            "unexpected tensors.*blocks.9.extra",
        ),
        (
            lambda s: s.update({"blocks.0.proj_in.weight": torch.zeros(3, 3)}),
            r"mis-shaped.*blocks.0.proj_in.weight: file \(3, 3\)",
        ),
        (  # a shape torch would broadcast into the tensor without a word
            lambda s: s.update({"blocks.0.proj_in.bias": torch.zeros(1)}),
            r"mis-shaped.*blocks.0.proj_in.bias: file \(1,\) vs model \(32,\)",
        ),
    ],
)
def test_mismatched_checkpoints_name_the_tensor(tmp_path, damage, message):
    cfg = tiny_config()
    state = reference_state(cfg)
    damage(state)
    save_file(state, str(tmp_path / "m.safetensors"))
    with pytest.raises(EngineError, match=message):
        build_model(cfg, tmp_path / "m.safetensors")


def test_truncated_and_foreign_files_give_clear_errors(tmp_path):
    cfg = tiny_config()
    save_file(reference_state(cfg), str(tmp_path / "m.safetensors"))
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match="cut.safetensors is truncated or corrupt"):
        build_model(cfg, tmp_path / "cut.safetensors")
    (tmp_path / "notes.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EngineError, match="cannot read model file notes.pth"):
        open_state_dict(tmp_path / "notes.pth")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(EngineError, match="unsupported model file type"):
        open_state_dict(tmp_path / "m.onnx")
    with pytest.raises(EngineError, match="not found"):
        open_state_dict(tmp_path / "absent.safetensors")


def test_pth_loading_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"blocks.0.proj_in.weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(EngineError, match="cannot read model file"):
        open_state_dict(tmp_path / "evil.pth")


def test_convert_pth_to_safetensors(tmp_path):
    cfg = tiny_config()
    state = reference_state(cfg)
    torch.save(state, tmp_path / "m.pth")
    out = convert_to_safetensors(tmp_path / "m.pth")
    assert out == tmp_path / "m.safetensors" and not (tmp_path / "m.safetensors.part").exists()
    converted = open_state_dict(out)
    assert not any("attn_mask" in k for k in converted)
    model = build_model(cfg, out)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
