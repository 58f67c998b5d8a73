"""The 7B pipeline's assembly on tiny random parts (T5, Wan VAE, flow): every mode end to end,
streamed frames equal whole-clip sampling + denoising + decoding, template in the text path."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from engine.api import GenerateRequest
from engine.denoise import denoise_clip
from engine.pipeline import to_tensor
from engine.sampling import sample
from engine.session import NoiseSource
from engine.starflow_v.loader import LargeOptions, assemble
from engine.starflow_v.text import T5TextEncoder
from engine.starflow_v.vae import WanCodec
from engine_utils import random_model, tiny_config

diffusers = pytest.importorskip("diffusers")
from test_large_text import tiny_config as tiny_t5_config  # noqa: E402
from test_large_text import tiny_tokenizer  # noqa: E402
from test_large_vae import TINY  # noqa: E402

OPTIONS = LargeOptions(
    aspect_ratio="16:9", side=32, jacobi_block_size=4, jacobi_max_iter=64, jacobi_threshold=1e-9
)


def tiny_large_pipeline():
    """The 7B pipeline's code path (T5 template, Wan VAE, flow) on tiny random parts."""
    torch.manual_seed(0)
    codec = WanCodec(diffusers.AutoencoderKLWan(**TINY))
    text = T5TextEncoder.from_config(tiny_t5_config(), tiny_tokenizer(), max_tokens=12)
    flow = random_model(
        tiny_config(
            in_channels=48,
            txt_dim=16,
            txt_size=12,
            img_size=2,
            pt_seq_len=2,
            channels=32,
            top_block_channels=32,
        ),
        std=0.05,
    )
    return assemble(flow, codec, text, OPTIONS)


@pytest.fixture(scope="module")
def pipeline():
    return tiny_large_pipeline()


def collect(pipeline, request):
    events = list(pipeline.generate(request))
    # each event's frames go on where the last one's ended: start is the frames already sent
    assert [e.start for e in events] == [0] + [e.done for e in events[:-1]]
    assert all(e.done == e.start + len(e.frames) and e.total == request.frames for e in events)
    frames = np.concatenate([e.frames for e in events])
    assert events[-1].done == len(frames) == request.frames
    return events, frames


def test_frame_size_follows_the_area_rule(pipeline):
    assert (pipeline.info.height, pipeline.info.width) == (32, 48)


def test_text_to_video_streams_what_whole_clip_generation_gives(pipeline):
    request = GenerateRequest(prompt="a red circle moves left", frames=9, seed=3, guidance=2.0)
    events, frames = collect(pipeline, request)
    assert len(events) == 3  # latent frames arrive one by one: 1 + 4 + 4 video frames
    y, y_null = pipeline.embed(request.text, 2.0)
    noise_src = NoiseSource(3, (1, 48, 2, 3))
    noise = torch.stack([noise_src.next() for _ in range(3)], dim=1)
    latents = sample(pipeline.model, noise, y, y_null, pipeline.options(2.0, 3))
    latents = denoise_clip(pipeline.model, latents, y)
    whole = pipeline.codec.decode(latents)
    expected = (
        ((whole[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    )
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


def test_prompt_goes_through_the_reference_template(pipeline, monkeypatch):
    seen = []
    original = pipeline.text.encode
    monkeypatch.setattr(
        pipeline.text, "encode", lambda texts: seen.extend(texts) or original(texts)
    )
    pipeline.embed("(v2v) remove the red circle", 2.5)
    assert seen == [
        "Noise Level 500:\nA video with 16 fps:\n(v2v) remove the red circle\n\n in a 16:9 aspect ratio.\n",
        "Noise Level 500:\nA video with 16 fps:\n\n\n in a 16:9 aspect ratio.\n",
    ]


def test_image_to_video_starts_from_the_image_and_goes_on_from_it(pipeline):
    """The image is fitted to the frame size (at the frame size: as given; at twice it:
    area-downscaled; taller: its middle rows) and the frames follow from it: another image, other
    frames. Frame 0 is the decoded start latent, as the reference's (test_large_decode)."""
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    double = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    tall = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    made = {}
    for name, image in (("exact", exact), ("double", double), ("tall", tall)):
        request = GenerateRequest(prompt="a red circle", mode="i2v", image=image, frames=5, seed=1)
        _, made[name] = collect(pipeline, request)
    assert np.array_equal(pipeline.prepare_image(exact), exact)
    halved = cv2.resize(double, (48, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(pipeline.prepare_image(double), halved)
    assert np.array_equal(pipeline.prepare_image(tall), tall[4:36])
    assert np.abs(made["exact"][0].astype(int) - made["double"][0]).mean() > 1
    assert np.abs(made["exact"][1:].astype(int) - made["double"][1:]).mean() > 1


def generate_from(pipeline, mode: str, clip: np.ndarray, frames: int) -> np.ndarray:
    text = "remove the red circle" if mode == "v2v" else "a red circle"
    request = GenerateRequest(prompt=text, mode=mode, video=clip, frames=frames, seed=2)
    return collect(pipeline, request)[1]


@pytest.mark.parametrize("mode, frames", [("extend", 8), ("v2v", 9)])
def test_extend_and_edit_follow_their_source_clip(pipeline, mode, frames):
    """The frames made after (extend) or of (edit) a source clip depend on it: the same clip and
    seed give the same frames, a clip whose last frame differs or a black clip other frames."""
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 255, (9, 32, 48, 3), dtype=np.uint8)
    other_end = clip.copy()
    other_end[-1] = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    made = generate_from(pipeline, mode, clip, frames)
    assert made.shape == (frames, 32, 48, 3)
    assert np.array_equal(made, generate_from(pipeline, mode, clip, frames))
    for source in (other_end, np.zeros_like(clip)):
        changed = np.abs(generate_from(pipeline, mode, source, frames).astype(int) - made)
        assert changed.mean() > 0.02, changed.mean()


@pytest.mark.parametrize("asked, made", [(0, 9), (10, 9), (12, 9), (17, 17)])
def test_an_edit_of_a_source_the_codec_cannot_make_is_snapped_down(pipeline, asked, made):
    """A 10-frame source: the causal VAE decodes 9 of them (1 + 4n), so the edit makes 9 frames
    (never fewer than it says, never past its source), and a longer request loops whole passes."""
    clip = np.random.default_rng(3).integers(0, 255, (10, 32, 48, 3), dtype=np.uint8)
    assert pipeline.snap_frames(asked or 10, "v2v") == made
    request = GenerateRequest(prompt="remove the red circle", mode="v2v", video=clip, frames=asked)
    events = list(pipeline.generate(request))
    assert sum(len(e.frames) for e in events) == events[-1].done == made
    assert {e.total for e in events} == {made}


def test_extend_takes_the_last_frames_of_the_source_as_context(pipeline, monkeypatch):
    """With a context of 2 latents (5 video frames) only the source's last 5 frames count: a clip
    with other frames before them gives the same frames."""
    monkeypatch.setattr(pipeline, "settings", replace(pipeline.settings, extend_context=2))
    rng = np.random.default_rng(2)
    clip = rng.integers(0, 255, (9, 32, 48, 3), dtype=np.uint8)
    other_start = clip.copy()
    other_start[:4] = rng.integers(0, 255, (4, 32, 48, 3), dtype=np.uint8)
    made = generate_from(pipeline, "extend", clip, 4)
    np.testing.assert_array_equal(generate_from(pipeline, "extend", other_start, 4), made)


def test_context_latents_get_the_reference_noise(pipeline):
    frame = np.full((1, 32, 48, 3), 128, np.uint8)
    clean = pipeline.codec.encode(to_tensor(frame, "cpu"))
    noisy = pipeline.encode(frame, noise_seed=0)
    assert abs((noisy - clean).std().item() - 0.5) < 0.1


def test_the_command_line_guidance_default_is_the_models(pipeline):
    """The 7B's default guidance is the reference video script's 3.5; a job's cfg overrides it."""
    from engine.cli import request_from

    assert pipeline.info.guidance == 3.5
    assert request_from({"prompt": "a red circle"}, pipeline).guidance == 3.5
    assert request_from({"prompt": "a red circle", "cfg": 1.5}, pipeline).guidance == 1.5
