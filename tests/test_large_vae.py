"""The Wan2.2 codec on a tiny random AutoencoderKLWan (shapes, normalisation, streaming == whole
clip) and the 7B frame sizes per aspect ratio."""

from __future__ import annotations

import logging

import pytest
import torch

from engine.api import EngineError
from engine.starflow_v.sizes import (
    ASPECT_RATIOS,
    VideoGeometry,
    frame_size,
    latent_frames,
    video_frames,
)
from engine.starflow_v.vae import (
    WAN22_MEAN,
    WAN22_STD,
    LatentNorm,
    WanCodec,
    add_noise,
)

diffusers = pytest.importorskip("diffusers")

# Wan2.2's layout (residual blocks, 2x2 patching, temporal downsampling in the last two stages,
# 48 latent channels) at a few thousand parameters per layer
TINY = dict(
    base_dim=8,
    decoder_base_dim=8,
    z_dim=48,
    dim_mult=[1, 2, 2, 2],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    is_residual=True,
    in_channels=12,
    out_channels=12,
    patch_size=2,
    scale_factor_spatial=16,
    scale_factor_temporal=4,
    latents_mean=list(WAN22_MEAN),
    latents_std=list(WAN22_STD),
)


@pytest.fixture(scope="module")
def codec() -> WanCodec:
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(**TINY)
    return WanCodec(vae, LatentNorm.wan22(0.6))


def frames(t: int = 9, h: int = 32, w: int = 48, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, t, 3, h, w, generator=g) * 2 - 1  # (B, T, 3, H, W) in [-1, 1]


def latents(t: int = 3, seed: int = 2) -> torch.Tensor:
    return torch.randn(1, t, 48, 2, 3, generator=torch.Generator().manual_seed(seed))


def reference_decode(codec: WanCodec, z: torch.Tensor) -> torch.Tensor:
    """The whole clip through diffusers' own decode, normalisation undone as the reference does."""
    raw = z.clone()
    raw[:, 1:] = raw[:, 1:] / 0.6
    mean = torch.tensor(WAN22_MEAN).view(1, 1, -1, 1, 1)
    inv_std = 1.0 / torch.tensor(WAN22_STD).view(1, 1, -1, 1, 1)
    raw = raw / inv_std + mean
    with torch.no_grad():
        out = codec.vae.decode(raw.permute(0, 2, 1, 3, 4)).sample
    return out.permute(0, 2, 1, 3, 4)


def test_factors_and_shapes(codec: WanCodec):
    assert (codec.channels, codec.spatial_factor, codec.temporal_factor) == (48, 16, 4)
    z = codec.encode(frames())
    assert z.shape == (1, 3, 48, 2, 3) and z.dtype == torch.float32
    x = codec.decode(z)
    assert x.shape == (1, 9, 3, 32, 48) and x.abs().max() <= 1.0
    assert codec.encode(frames(t=1)).shape == (1, 1, 48, 2, 3)


def test_encode_applies_the_reference_normalisation(codec: WanCodec):
    x = frames()
    with torch.no_grad():
        mu = codec.vae.encode(x.permute(0, 2, 1, 3, 4)).latent_dist.mean.permute(0, 2, 1, 3, 4)
    mean = torch.tensor(WAN22_MEAN).view(1, 1, -1, 1, 1)
    expected = (mu - mean) * (1.0 / torch.tensor(WAN22_STD)).view(1, 1, -1, 1, 1)
    expected[:, 1:] = expected[:, 1:] * 0.6
    torch.testing.assert_close(codec.encode(x), expected, rtol=0, atol=1e-6)


def test_normalisation_round_trip_and_stream_offsets():
    norm = LatentNorm((0.1, -0.2), (0.5, 2.0), temporal_scale=0.6)
    mu = torch.randn(2, 4, 2, 3, 3)
    z = norm.normalize(mu)
    torch.testing.assert_close(norm.denormalize(z), mu)
    by_hand = (mu[:, 1] - torch.tensor([0.1, -0.2]).view(2, 1, 1)) / torch.tensor([0.5, 2.0]).view(
        2, 1, 1
    )
    torch.testing.assert_close(z[:, 1], by_hand * 0.6)
    torch.testing.assert_close(z[:, 0], norm.standardize(mu)[:, 0])  # the first frame: unscaled
    # a frame later in the clip (start > 0) is scaled even when it comes first in the tensor
    torch.testing.assert_close(norm.normalize(mu[:, 2:], start=2), z[:, 2:])
    torch.testing.assert_close(norm.denormalize(z[:, 1:], start=1), mu[:, 1:])


def test_streamed_decode_equals_whole_clip_decode(codec: WanCodec):
    z = latents(t=3)
    whole = reference_decode(codec, z)
    stream = codec.stream_decoder()
    parts = [stream.push(z[:, t]) for t in range(z.shape[1])]
    assert [p.shape[1] for p in parts] == [1, 4, 4]
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_chunked_decode_equals_whole_decode(codec: WanCodec, chunk: int):
    z = latents(t=3)
    torch.testing.assert_close(
        codec.decode(z, chunk=chunk, out_device="cpu"),
        reference_decode(codec, z),
        rtol=0,
        atol=1e-5,
    )
    sizes = [c.shape[1] for c in codec.iter_decode(z, chunk=chunk)]
    assert sum(sizes) == 9 and len(sizes) == -(-3 // chunk)


def test_two_streams_do_not_share_state(codec: WanCodec):
    a, b = codec.stream_decoder(), codec.stream_decoder()
    z = latents(t=2)
    first = a.push(z[:, 0])
    b.push(z[:, 1])  # a different clip in between
    torch.testing.assert_close(
        torch.cat([first, a.push(z[:, 1])], 1), reference_decode(codec, z), rtol=0, atol=1e-5
    )


def test_add_noise_is_seeded_with_the_requested_std():
    z = torch.zeros(4, 3, 48, 8, 8)
    a = add_noise(z, 0.5, torch.Generator().manual_seed(3))
    b = add_noise(z, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and abs(a.std().item() - 0.5) < 0.02 and abs(a.mean().item()) < 0.02


def test_sampled_encode_is_seeded_and_near_the_mean(codec: WanCodec):
    x = frames(t=5)
    mean = codec.encode(x)
    a = codec.encode(x, sample=True, generator=torch.Generator().manual_seed(4))
    b = codec.encode(x, sample=True, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, mean)


def test_bad_inputs_are_engine_errors(codec: WanCodec):
    with pytest.raises(EngineError, match="multiple of 16"):
        codec.encode(frames(h=24))
    with pytest.raises(EngineError, match="B, T, 3, H, W"):
        codec.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(EngineError, match="latent"):
        codec.decode(torch.zeros(1, 2, 16, 2, 2))
    with pytest.raises(EngineError, match="latent frame"):
        codec.stream_decoder().push(torch.zeros(1, 2, 48, 2, 2))
    with pytest.raises(EngineError, match="channels"):
        WanCodec(codec.vae, LatentNorm((0.0,), (1.0,)))


def test_from_pretrained_reads_a_saved_folder_offline(tmp_path, codec: WanCodec, caplog):
    codec.vae.save_pretrained(tmp_path / "vae")
    with caplog.at_level(logging.WARNING, logger="engine.starflow_v.vae"):
        loaded = WanCodec.from_pretrained(str(tmp_path), local_files_only=True)
    assert not caplog.records  # the tiny config carries the reference statistics
    z = latents(t=2)
    torch.testing.assert_close(loaded.decode(z), codec.decode(z))
    with pytest.raises(EngineError, match="video VAE"):
        WanCodec.from_pretrained(str(tmp_path / "missing"), local_files_only=True)


# ---- frame sizes of the released model (sizes.py; the reference's area rule) --------------------
@pytest.mark.parametrize(
    ("aspect", "size"),
    [
        ("1:1", (640, 640)),
        ("2:3", (784, 528)),
        ("3:2", (528, 784)),
        ("16:9", (480, 848)),
        ("9:16", (848, 480)),
        ("4:5", (720, 576)),
        ("5:4", (576, 720)),
        ("21:9", (416, 976)),
        ("9:21", (976, 416)),
    ],
)
def test_frame_size_per_aspect_ratio(aspect: str, size: tuple[int, int]):
    assert frame_size(aspect) == size  # (height, width), multiples of 16
    assert aspect in ASPECT_RATIOS


def test_frame_counts_and_geometry():
    assert frame_size(None) == (640, 640)
    assert [latent_frames(n) for n in (1, 4, 5, 9, 81, 161)] == [1, 1, 2, 3, 21, 41]
    assert video_frames(21) == 81
    geo = VideoGeometry.for_clip("16:9", frames=81, fps=16)
    assert (geo.latent_frames, geo.latent_size, geo.seconds) == (21, (30, 53), 81 / 16)
    for bad in ("16x9", "0:1", "a:b"):
        with pytest.raises(EngineError, match="aspect ratio"):
            frame_size(bad)
    with pytest.raises(EngineError):
        latent_frames(0)


# ---- the reference's Wan2.2_VAE.pth -> a diffusers folder (wan_vae.py) ---------------------------
def original_state(vae) -> dict[str, torch.Tensor]:
    """The diffusers model's tensors under Wan2.2's original names (the inverse of the map)."""
    from engine.starflow_v.wan_vae import original_names

    state = vae.state_dict()
    return {orig: state[name].clone() for name, orig in original_names(list(state)).items()}


def test_original_names_follow_wan22_layout(codec: WanCodec):
    from engine.starflow_v.wan_vae import WAN22_CONFIG, meta_model, original_names

    names = original_names(list(meta_model(WAN22_CONFIG).state_dict()))
    # names as Wan2.2's own VAE module has them (two resnets per encoder stage, three per decoder one)
    for diffusers_name, original in [
        ("quant_conv.weight", "conv1.weight"),
        ("post_quant_conv.bias", "conv2.bias"),
        ("encoder.conv_in.weight", "encoder.conv1.weight"),
        (
            "encoder.down_blocks.0.resnets.1.norm2.gamma",
            "encoder.downsamples.0.downsamples.1.residual.3.gamma",
        ),
        (
            "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
            "encoder.downsamples.1.downsamples.0.shortcut.weight",
        ),
        (
            "encoder.down_blocks.2.downsampler.time_conv.weight",
            "encoder.downsamples.2.downsamples.2.time_conv.weight",
        ),
        ("encoder.mid_block.resnets.1.conv2.weight", "encoder.middle.2.residual.6.weight"),
        ("decoder.mid_block.attentions.0.to_qkv.weight", "decoder.middle.1.to_qkv.weight"),
        (
            "decoder.up_blocks.0.upsampler.resample.1.weight",
            "decoder.upsamples.0.upsamples.3.resample.1.weight",
        ),
        (
            "decoder.up_blocks.3.resnets.2.conv1.bias",
            "decoder.upsamples.3.upsamples.2.residual.2.bias",
        ),
        ("decoder.norm_out.gamma", "decoder.head.0.gamma"),
        ("decoder.conv_out.weight", "decoder.head.2.weight"),
    ]:
        assert names[diffusers_name] == original
    assert len(names) == len(set(names.values()))


def test_reference_pth_converts_to_the_same_model(tmp_path, codec: WanCodec):
    from engine.starflow_v.wan_vae import convert_once

    pth = tmp_path / "Wan2.2_VAE.pth"
    torch.save(original_state(codec.vae), pth)
    folder = convert_once(pth, TINY)
    loaded = WanCodec.from_pretrained(str(folder), subfolder=None, local_files_only=True)
    theirs = loaded.vae.state_dict()
    assert set(theirs) == set(codec.vae.state_dict())
    for name, tensor in codec.vae.state_dict().items():
        assert torch.equal(theirs[name], tensor), name
    stamp = (folder / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert convert_once(pth, TINY) == folder  # converted once, reused
    assert (folder / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp


def test_a_pth_of_another_model_is_refused_naming_every_difference(tmp_path, codec: WanCodec):
    from engine.starflow_v.wan_vae import convert

    state = original_state(codec.vae)
    del state["decoder.head.2.weight"]
    state["decoder.head.9.weight"] = torch.zeros(1)
    state["conv2.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(EngineError) as error:
        convert(tmp_path / "other.pth", tmp_path / "out", TINY)
    text = str(error.value)
    assert "missing tensors (1): decoder.head.2.weight" in text
    assert "unexpected tensors (1): decoder.head.9.weight" in text
    assert "conv2.bias: file [7] vs expected [48]" in text
    assert not (tmp_path / "out").exists()


def test_vae_folder_check_reads_only_headers_and_refuses_mismatches(tmp_path, codec: WanCodec):
    from engine.starflow_v.parts import check_vae

    codec.vae.save_pretrained(tmp_path / "repo" / "vae")
    assert check_vae(tmp_path / "repo") == tmp_path / "repo" / "vae"  # the repo or its vae/
    weights = tmp_path / "repo" / "vae" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    state.pop("decoder.conv_out.bias")
    save_file(state, str(weights))
    with pytest.raises(EngineError, match="missing tensors \\(1\\): decoder.conv_out.bias"):
        check_vae(tmp_path / "repo" / "vae")


def test_from_pretrained_takes_the_vae_folder_itself_or_the_pth(
    tmp_path, codec: WanCodec, monkeypatch
):
    from engine.starflow_v import wan_vae

    codec.vae.save_pretrained(tmp_path / "vae")
    z = latents(t=2)
    torch.testing.assert_close(
        WanCodec.from_pretrained(str(tmp_path / "vae")).decode(z), codec.decode(z)
    )
    from engine.starflow_v.parts import locate

    monkeypatch.setattr(wan_vae, "WAN22_CONFIG", TINY)
    torch.save(original_state(codec.vae), tmp_path / "Wan2.2_VAE.pth")
    folder = locate("vae", str(tmp_path / "Wan2.2_VAE.pth"), tmp_path / "models")
    assert folder == str(tmp_path / "Wan2.2_VAE-diffusers")
    loaded = WanCodec.from_pretrained(folder)
    torch.testing.assert_close(loaded.decode(z), codec.decode(z))
