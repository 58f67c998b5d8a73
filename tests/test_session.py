"""The streaming session: frames equal the whole-clip result, cancellation keeps what was yielded."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from engine.api import Cancelled
from engine.denoise import chunk_schedule, denoise_clip
from engine.sampling import SamplerOptions, sample
from engine.session import NoiseSource, Session
from engine_utils import random_model, tiny_config

HW = (4, 4)


def setup(temporal_causal: int = 2, window: int | None = None, guidance: float = 2.0):
    model = random_model(tiny_config(temporal_causal=temporal_causal, local_attn_window=window))
    y, y_null = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    opts = SamplerOptions(guidance=guidance, block_size=4, max_iter=64, threshold=1e-9)
    return model, y, y_null, opts


def noise_clip(seed: int, frames: int) -> torch.Tensor:
    src = NoiseSource(seed, (1, 4, *HW))
    return torch.stack([src.next() for _ in range(frames)], dim=1)


@pytest.mark.parametrize("temporal_causal, window", [(2, None), (1, None), (2, 3)])
def test_streamed_frames_equal_whole_clip_sampling_and_denoising(temporal_causal, window):
    model, y, y_null, opts = setup(temporal_causal, window)
    session = Session(model, opts)
    session.set_prompt(y, y_null)
    streamed = dict(session.frames(7, NoiseSource(3, (1, 4, *HW)), latent_hw=HW))
    assert sorted(streamed) == list(range(7))
    whole = sample(model, noise_clip(3, 7), y, y_null, opts)
    whole = denoise_clip(model, whole, y, window, model.cfg.denoiser_window)
    got = torch.stack([streamed[i] for i in range(7)], dim=1)
    assert (got - whole).abs().max() <= 1e-4 * whole.abs().max()


def test_frames_arrive_in_order_and_without_denoising_immediately():
    model, y, y_null, opts = setup()
    session = Session(model, opts, denoise=False)
    session.set_prompt(y, y_null)
    assert [i for i, _ in session.frames(5, NoiseSource(0, (1, 4, *HW)), latent_hw=HW)] == list(
        range(5)
    )


def test_context_prefix_continues_the_clip():
    model, y, y_null, opts = setup()
    context = torch.randn(1, 2, 4, *HW)
    session = Session(model, opts, denoise=False)
    session.set_prompt(y, y_null)
    session.set_context(context)
    got = torch.stack([x for _, x in session.frames(3, NoiseSource(1, (1, 4, *HW)))], dim=1)
    noise = torch.cat([torch.zeros(1, 2, 4, *HW), noise_clip(1, 3)], dim=1)
    whole = sample(model, noise, y, y_null, opts, context=context)
    torch.testing.assert_close(got, whole[:, 2:], rtol=0, atol=1e-4)


def test_cancel_between_frames_keeps_yielded_frames():
    model, y, y_null, opts = setup()
    session = Session(model, opts, denoise=False)
    session.set_prompt(y, y_null)
    cancel = threading.Event()
    kept = []
    with pytest.raises(Cancelled):
        for i, frame in session.frames(6, NoiseSource(0, (1, 4, *HW)), cancel, HW):
            kept.append((i, frame))
            if i == 1:
                cancel.set()
    assert [i for i, _ in kept] == [0, 1]
    whole = sample(model, noise_clip(0, 2), y, y_null, opts)
    torch.testing.assert_close(torch.stack([f for _, f in kept], 1), whole, rtol=0, atol=1e-4)


def test_cancel_inside_a_frame_stops_before_it_finishes():
    model, y, y_null, _ = setup()
    opts = SamplerOptions(guidance=2.0, jacobi=False)  # token by token: many checks per frame
    calls = []
    cancel = threading.Event()

    class CountingEvent:
        def is_set(self):
            calls.append(1)
            return len(calls) > 3 or cancel.is_set()

    session = Session(model, opts, denoise=False)
    session.set_prompt(y, y_null)
    with pytest.raises(Cancelled):
        next(iter(session.frames(4, NoiseSource(0, (1, 4, *HW)), CountingEvent(), HW)))
    assert len(calls) == 4


def test_calls_out_of_order_raise():
    model, y, y_null, opts = setup()
    session = Session(model, opts)
    with pytest.raises(RuntimeError, match="set_prompt"):
        session.set_context(torch.zeros(1, 1, 4, *HW))
    with pytest.raises(ValueError, match="null prompt"):
        session.set_prompt(y)


def test_reference_chunk_schedule():
    assert chunk_schedule(10, None, 3) == [(0, 0, 10)]
    assert chunk_schedule(10, 4, 2) == [(0, 0, 4), (2, 4, 6), (4, 6, 8), (6, 8, 10)]
    assert chunk_schedule(6, 4, None) == [(0, 0, 4), (1, 4, 5), (2, 5, 6)]


def test_offloaded_model_samples_the_same_frames():
    from engine.offload import enable_offload

    model, y, y_null, opts = setup()
    expected = sample(model, noise_clip(2, 3), y, y_null, opts)
    offloader = enable_offload(model, "cpu")
    assert len(offloader.modules) == len(model.shallow) + 1
    got = sample(model, noise_clip(2, 3), y, y_null, opts)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_offloaded_modules_visit_the_device_only_while_used():
    """On another device than the host (meta here, so no GPU is needed), an offloaded module's
    weights are device copies inside `resident` and the untouched host copies outside it; the
    top block stays on the device."""
    from engine.offload import enable_offload, resident

    model, *_ = setup()
    before = {n: p.clone() for n, p in model.named_parameters()}
    offloader = enable_offload(model, "meta")
    assert all(p.is_meta for p in model.top.parameters())
    for module in offloader.modules:
        host = [p.data_ptr() for p in module.parameters()]
        assert not any(p.is_meta for p in module.parameters())
        with resident(model, module) as used:
            assert used is module and all(p.is_meta for p in module.parameters())
        assert [p.data_ptr() for p in module.parameters()] == host
    for name, p in model.named_parameters():
        if not p.is_meta:
            torch.testing.assert_close(p, before[name], rtol=0, atol=0)


def test_sampling_temperature_scales_the_noise_and_changes_the_frames():
    plain, cool = NoiseSource(4, (1, 4, *HW)), NoiseSource(4, (1, 4, *HW), temperature=0.5)
    for _ in range(3):
        torch.testing.assert_close(cool.next(), 0.5 * plain.next())
    with pytest.raises(ValueError, match="temperature"):
        NoiseSource(4, (1, 4, *HW), temperature=0.0)
    model, y, y_null, opts = setup()
    runs = []
    for temperature in (1.0, 0.5):
        session = Session(model, opts, denoise=False)
        session.set_prompt(y, y_null)
        src = NoiseSource(4, (1, 4, *HW), temperature=temperature)
        runs.append(torch.stack([f for _, f in session.frames(3, src, latent_hw=HW)]))
    assert (runs[0] - runs[1]).abs().max() > 1e-3


def test_guidance_pushes_away_from_the_null_prompt():
    """With the prompt as its own null prompt guidance changes nothing (both halves agree); with
    another null prompt it changes the frames."""
    model, y, y_null, opts = setup()
    noise = noise_clip(5, 3)
    plain = sample(model, noise, y, None, SamplerOptions(block_size=4, max_iter=64, threshold=1e-9))
    torch.testing.assert_close(sample(model, noise, y, y, opts), plain, rtol=0, atol=1e-4)
    assert (sample(model, noise, y, y_null, opts) - plain).abs().max() > 1e-2


def test_a_full_window_restarts_from_its_last_frames():
    """Sampling with a window of 3 latent frames: the first 3 frames are those of unlimited
    attention, and each later frame is what a fresh clip with the 2 frames before it as context
    samples from the same noise (the reference's sliding window)."""
    model, y, y_null, opts = setup()
    noise = noise_clip(6, 6)
    unlimited = sample(model, noise, y, y_null, opts)
    windowed = sample(model, noise, y, y_null, replace(opts, window=3))
    torch.testing.assert_close(windowed[:, :3], unlimited[:, :3], rtol=0, atol=1e-4)
    for t in range(3, 6):
        restarted = sample(model, noise[:, t - 2 : t + 1], y, y_null, opts, windowed[:, t - 2 : t])
        torch.testing.assert_close(windowed[:, t], restarted[:, 2], rtol=0, atol=1e-3)
        assert (windowed[:, t] - unlimited[:, t]).abs().max() > 1e-2
