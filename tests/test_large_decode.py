"""The 7B pipeline's clip lengths, context decoding and long-clip settings on tiny random parts:
frame counts snap to what the causal VAE makes, image to video and extend stream what the
reference's whole-clip denoise-then-decode gives (context included), any window runs."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.api import EngineError, GenerateRequest
from engine.denoise import denoise_clip
from engine.pipeline import to_uint8
from engine.sampling import sample
from engine.session import NoiseSource
from engine.starflow_v.loader import LargeOptions, assemble

pytest.importorskip("diffusers")
from test_large_pipeline import OPTIONS, collect, tiny_large_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def pipeline():
    return tiny_large_pipeline()


def reassembled(pipeline, **options):
    """The same parts assembled with other LargeOptions."""
    return assemble(pipeline.model, pipeline.codec, pipeline.text, replace(OPTIONS, **options))


def whole_clip(pipeline, request, context: torch.Tensor, shown: int) -> np.ndarray:
    """The reference: sample after the context, denoise the whole latent clip (context included)
    in the pipeline's chunks, decode it all, keep the last context frames `shown` and the rest."""
    y, y_null = pipeline.embed(request.text, request.guidance, pipeline.null_text(request.mode))
    n_ctx, k = context.size(1), pipeline.codec.temporal_factor
    n_lat = math.ceil((request.frames - shown) / k)
    source = NoiseSource(request.seed, (1, 48, 2, 3))
    noise = torch.stack(
        [torch.zeros(1, 48, 2, 3)] * n_ctx + [source.next() for _ in range(n_lat)], 1
    )
    total = n_ctx + n_lat
    latents = sample(pipeline.model, noise, y, y_null, pipeline.options(2.5, total), context)
    steps = pipeline.denoise_steps(total)
    latents = denoise_clip(pipeline.model, latents, y, steps, pipeline.model.cfg.denoiser_window)
    frames = to_uint8(pipeline.codec.decode(latents))
    return frames[(n_ctx - 1) * k + 1 - shown :]


def test_frame_counts_snap_to_the_lengths_the_causal_vae_makes(pipeline):
    snap = pipeline.snap_frames
    assert [snap(n) for n in (1, 2, 3, 4, 5, 8, 77, 80, 81)] == [1, 1, 5, 5, 5, 9, 77, 81, 81]
    assert [snap(n, "i2v") for n in (1, 6, 7)] == [1, 5, 9]
    assert [snap(n, "extend") for n in (1, 4, 6, 9)] == [4, 4, 8, 8]
    assert [snap(n, "v2v") for n in (1, 8, 9, 10, 12, 13)] == [1, 5, 9, 9, 9, 13]
    for mode, asked, made in (("t2v", 8, 9), ("extend", 6, 8)):
        clip = np.zeros((5, 32, 48, 3), np.uint8)
        request = GenerateRequest(prompt="a red circle", mode=mode, video=clip, frames=asked)
        events = list(pipeline.generate(request))
        assert sum(len(e.frames) for e in events) == events[-1].total == made


@pytest.mark.parametrize("mode", ["i2v", "extend"])
def test_context_modes_stream_the_reference_whole_clip_decode(pipeline, mode):
    """i2v's frame 0 is the decoded (denoised) start latent, as the reference saves it; extend's
    new frames come from decoding the denoised source latents and the new ones together."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    clip = rng.integers(0, 255, (9, 32, 48, 3), dtype=np.uint8)
    request = GenerateRequest(
        prompt="a red circle",
        mode=mode,
        image=image,
        video=clip,
        frames=9 if mode == "i2v" else 8,
        seed=5,
    )
    _, frames = collect(pipeline, request)
    source = image[None] if mode == "i2v" else clip
    context = pipeline.encode(source, request.seed)
    expected = whole_clip(pipeline, request, context, shown=1 if mode == "i2v" else 0)
    assert expected.shape == frames.shape
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("window", [1, 2, 3])
def test_any_window_runs_and_matches_whole_clip_sampling(pipeline, window):
    """Windows at or below the denoiser's overlap (2 here) used to stop the denoiser; its chunks
    now follow the training length, and the clip equals whole-clip sampling in that window."""
    small = reassembled(pipeline, window=window)
    request = GenerateRequest(prompt="a red circle", frames=13, seed=3, guidance=2.5)
    _, frames = collect(small, request)
    y, y_null = small.embed(request.text, 2.5)
    source = NoiseSource(3, (1, 48, 2, 3))
    noise = torch.stack([source.next() for _ in range(4)], dim=1)
    latents = sample(small.model, noise, y, y_null, small.options(2.5, 4))
    latents = denoise_clip(small.model, latents, y, small.denoise_steps(4), 2)
    expected = to_uint8(small.codec.decode(latents))
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


def test_long_clips_reencode_the_reference_context():
    """The 7B's default: 16 frames re-encoded as the 21-frame window slides (every 5 new frames);
    a shorter window keeps as many as fit; the denoiser's chunks stay at the training length."""
    large = tiny_large_pipeline()
    assert LargeOptions().context == 16
    opts = large.options(2.5, 40)
    assert (opts.window, opts.context) == (21, 16)
    assert large.denoise_steps(40) == 21
    six = reassembled(large, window=6)
    assert (six.options(2.5, 40).window, six.options(2.5, 40).context) == (6, 5)
    assert six.denoise_steps(40) == 21 and six.denoise_steps(21) is None
    assert reassembled(large, window=6, context=3).options(2.5, 40).context == 3


@pytest.mark.parametrize("options", [dict(window=0), dict(window=-2), dict(context=-1)])
def test_windows_below_one_frame_are_refused(options):
    with pytest.raises(EngineError, match="or more"):
        LargeOptions(**options)
