"""STARFlow-V checkpoints of any shape load through their configuration (the reference's YAML or
our JSON, given or beside the checkpoint) with the same strict name/shape checks; the frame size
follows the config's img_size. Tiny random parts saved as a Hub-like T5 folder, a Wan VAE folder
and a safetensors flow."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from engine.api import EngineError, GenerateRequest
from engine.cli import main
from engine.registry import family_of, load_pipeline
from engine.starflow_v.config_file import builtin_spec, read_model_config
from engine.starflow_v.sizes import frame_size
from engine_utils import random_model

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")
from test_large_text import tiny_config as tiny_t5_config  # noqa: E402
from test_large_text import tiny_tokenizer  # noqa: E402
from test_large_vae import TINY  # noqa: E402

# a reduced STARFlow-V in the reference's YAML layout: its model arguments, training-only ones
# (ignored), and the companions (text encoder folder, VAE folder with its temporal scale)
YAML = """arguments:
- fsdp: 1
- img_size: {img_size}
- txt_size: 12
- vid_size: '81:16'
- channel_size: 48
- patch_size: 1
- channels: 32
- top_block_channels: 32
- blocks: 3
- layers_per_block: 1 1 2
- head_dim: 16
- noise_std: 0.5
- lr: 5e-5
- rope: 1
- sos: 1
- seq_order: L2R
- pt_seq_len: {latent}
- use_softplus: 1
- cond_top_only: 1
- use_final_norm: 1
- learnable_self_denoiser: 1
- conditional_denoiser: 1
- denoiser_window: 2
- temporal_causal: 2
- shallow_block_local: 1
- vae: {vae}:0.6
- text: {text}
- soft_clip: 4
"""


# the reference's configs/starflow-v_7B_t2v_caus_480p.yaml as released (training keys and all)
REFERENCE_7B = """arguments:
- no_flip: 1
- fsdp: 1
- fsdp_text_encoder: 1
- img_size: 640
- secondary_img_size: 512
- txt_size: 256
- vid_size: '81:16'
- fps_cond: 1
- channel_size: 48
- patch_size: 1
- channels: 3072
- top_block_channels: 4096
- blocks: 6
- layers_per_block: 2 2 2 2 2 24
- noise_std: 0.5
- batch_size: 192
- secondary_batch_size: 1536
- secondary_ratio: 0.2
- lr: 5e-5
- min_lr: 1e-6
- nvp: 1
- rope: 1
- adaln: 0
- sos: 1
- seq_order: L2R
- pt_seq_len: 32
- wds: 1
- mix_aspect: 1
- use_softplus: 1
- cond_top_only: 1
- use_final_norm: 1
- learnable_self_denoiser: 1
- conditional_denoiser: 1
- denoiser_window: 10
- cond_noise_level: 1
- temporal_causal: 2
- shallow_block_local: 1
- gradient_checkpoint: 1
- gradient_checkpoint_mlp: 1
- vae: Wan-AI/Wan2.2-TI2V-5B-Diffusers:0.6
- finetuned_vae: none
- text: google/flan-t5-xl
- cfg: 2.5
- drop_label: 0.1
- drop_image: 0.25
- loss_scaling: 1
- grad_clip: 1
- grad_skip: 1
- sample_freq: 100000
- soft_clip: 4
"""


def test_the_released_reference_yaml_is_the_built_in_7b(tmp_path):
    (tmp_path / "7b.yaml").write_text(REFERENCE_7B)
    spec, builtin = read_model_config(tmp_path / "7b.yaml"), builtin_spec()
    assert spec.flow == builtin.flow and spec.side == builtin.side == 640
    assert (spec.text_encoder, spec.vae, spec.vae_temporal_scale) == (
        "google/flan-t5-xl",
        "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
        0.6,
    )
    assert frame_size("16:9", side=spec.side) == (480, 848)


@pytest.fixture(scope="module")
def companions(tmp_path_factory):
    """(text encoder folder, VAE folder) as from_pretrained reads them."""
    root = tmp_path_factory.mktemp("companions")
    torch.manual_seed(0)
    transformers.T5EncoderModel(tiny_t5_config()).save_pretrained(root / "t5")
    tiny_tokenizer().save_pretrained(root / "t5")
    diffusers.AutoencoderKLWan(**TINY).save_pretrained(root / "wan" / "vae")
    return root / "t5", root / "wan"


def write_model(folder, companions, img_size: int = 32, config_name: str | None = "model.yaml"):
    """A random checkpoint of the YAML's configuration; the YAML beside it (or at config_name)."""
    text, vae = companions
    yaml_text = YAML.format(img_size=img_size, latent=img_size // 16, text=text, vae=vae)
    config = folder / (config_name or "elsewhere.yaml")
    config.write_text(yaml_text)
    flow = random_model(read_model_config(config).flow, std=0.05)
    checkpoint = folder / "model.safetensors"
    save_file(dict(flow.state_dict()), str(checkpoint))
    return checkpoint, config


def generate(pipeline, frames: int = 5):
    request = GenerateRequest(prompt="a red circle moves left", frames=frames, seed=1)
    return [e.frames for e in pipeline.generate(request)]


@pytest.mark.parametrize("img_size, aspect, size", [(32, "16:9", (32, 48)), (64, "1:1", (64, 64))])
def test_a_reference_yaml_beside_the_checkpoint_loads_at_its_img_size(
    tmp_path, companions, img_size, aspect, size
):
    checkpoint, _ = write_model(tmp_path, companions, img_size)
    assert family_of(checkpoint).name == "starflow-v"
    pipeline = load_pipeline(checkpoint, "cpu", "fp32", aspect_ratio=aspect)
    assert (pipeline.info.height, pipeline.info.width) == size
    assert pipeline.info.name == "STARFlow-V (model)"
    frames = generate(pipeline)
    assert sum(len(f) for f in frames) == 5 and frames[0].shape[1:] == (*size, 3)


def test_our_json_beside_it_and_config_given_on_the_command_line(tmp_path, companions):
    checkpoint, config = write_model(tmp_path, companions, config_name=None)
    spec = read_model_config(config)
    ours = {"config": spec.flow.to_dict(), "text": spec.text_encoder, "vae": str(spec.vae)}
    (tmp_path / "model.json").write_text(json.dumps(ours))  # beside: not taken for a demo bundle
    assert family_of(checkpoint).name == "starflow-v"
    pipeline = load_pipeline(checkpoint, "cpu", "fp32")
    assert (pipeline.info.height, pipeline.info.width) == (32, 48)
    (tmp_path / "model.json").unlink()
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(checkpoint), "--prompt", "a red circle", "--frames", "5"]
    parts = ["--text-encoder", str(companions[0]), "--vae", str(companions[1])]
    assert main([*args, *parts, "--device", "cpu", "--config", str(config), "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_a_wrong_shape_or_no_config_is_refused_naming_the_tensor(tmp_path, companions):
    checkpoint, config = write_model(tmp_path, companions)
    state = dict(random_model(read_model_config(config).flow).state_dict())
    state["blocks.1.proj_in.weight"] = torch.zeros(32, 47)
    save_file(state, str(checkpoint))
    with pytest.raises(
        EngineError, match=r"STARFlow-V \(model\).*blocks\.1\.proj_in\.weight: file \[32, 47\]"
    ):
        load_pipeline(checkpoint, "cpu", "fp32")
    config.unlink()  # no config: the 7B's, which this small checkpoint does not match
    with pytest.raises(
        EngineError, match=r"STARFlow-V 7B.*blocks\.0\.attn_blocks\.0\.attention\.norm\.bias"
    ):
        load_pipeline(checkpoint, "cpu", "fp32")


@pytest.mark.parametrize(
    "change, field",
    [
        (("- sos: 1", "- sos: 0"), "sos"),
        (("- layers_per_block: 1 1 2", "- layers_per_block: 1 x 2"), "layers_per_block"),
        (("- head_dim: 16", "- head_dim: 16\n- use_swiglu: 1"), "use_swiglu"),
        (("- head_dim: 16", "- head_dim: 24"), "head_dim"),
        (("- img_size: 32", "- img_size: 40"), "img_size"),
        (("- text: ", "- text: someone/t5-"), "text"),
        (("arguments:", "arguments: {"), "not valid YAML at line 2"),
        (("arguments:", "argument:"), "'arguments'"),
    ],
)
def test_a_bad_config_names_the_file_and_the_field(tmp_path, companions, change, field):
    text = YAML.format(img_size=32, latent=2, text=companions[0], vae=companions[1])
    (tmp_path / "bad.yaml").write_text(text.replace(*change))
    with pytest.raises(EngineError) as caught:
        load_pipeline(tmp_path / "model.safetensors", "cpu", config=str(tmp_path / "bad.yaml"))
    message = str(caught.value)
    assert "\n" not in message and "bad.yaml" in message and field in message, message


def test_missing_parts_are_named_before_the_flow_loads(tmp_path, companions, monkeypatch):
    """The editor's path too (load_pipeline, not the command line): offline, a text encoder or
    VAE that is neither a folder nor downloaded is named, with how to get it, before the flow's
    weights are read."""
    import engine.starflow_v.loader as loader

    checkpoint, _ = write_model(tmp_path, companions)
    monkeypatch.setattr(loader, "DEFAULT_MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(loader, "build_model", lambda *a, **k: pytest.fail("the flow was loaded"))
    options = {"text_encoder": "someone/missing-t5", "vae": "someone/missing-vae"}
    with pytest.raises(EngineError, match=r"text encoder.*models download text-encoder.*VAE"):
        load_pipeline(checkpoint, "cpu", "fp32", **options)


def test_the_command_line_snaps_a_length_the_vae_cannot_make_and_says_so(
    tmp_path, companions, caplog
):
    import av

    checkpoint, config = write_model(tmp_path, companions)
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(checkpoint), "--prompt", "a red circle", "--frames", "8"]
    parts = ["--text-encoder", str(companions[0]), "--vae", str(companions[1])]
    assert main([*args, *parts, "--device", "cpu", "--out", str(out)]) == 0
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 9
    assert "8 frames asked: this model's video codec makes 9" in caplog.text
