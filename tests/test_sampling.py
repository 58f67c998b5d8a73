"""The Jacobi sampler's speed-ups keep its answers: the committed exact prefix, the bfloat16 draft
sweeps, the warm start of later frames, one mask per step and the rotary tables."""

from __future__ import annotations

import math

import pytest
import torch

import engine.sampling as sampling
from engine.model.flow_block import guided
from engine.model.layers import KVCache
from engine.model.rope import Rotary, rotate
from engine.sampling import Jacobi, SamplerOptions, invert_frame, make_draft, sample
from engine_utils import random_model, tiny_config


def setup(guidance: float = 2.0, frames: int = 3):
    model = random_model(tiny_config(), seed=3)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(1, frames, 4, 4, 4, generator=g)
    y = torch.randn(1, 5, 8, generator=g)
    return model, noise, y, torch.randn(1, 5, 8, generator=g)


def full_sweeps(block, z, cache, rope, last, init, opts, guidance):
    """The reference's Jacobi on one chunk: every sweep recomputes every token. Returns x, sweeps."""
    x = init.clone()
    for i in range(opts.max_iter):
        scale, shift = block.step(torch.cat([last, x[:, :-1]], dim=1), cache, rope)
        if guidance > 0:
            scale, shift = guided(scale, shift, guidance)
        new = shift + scale * z
        change = ((new - x) ** 2).mean() / (new**2).mean()
        x = new
        if i + 1 >= z.size(1) or change < opts.threshold:
            break
    cache.commit(z.size(1))
    return x, i + 1


def top_inputs(model, guidance: float):
    block = model.top
    g = torch.Generator().manual_seed(11)
    z = torch.randn(1, 16, 4, generator=g)
    y = torch.randn(2 if guidance else 1, 5, 8, generator=g)
    z = torch.cat([z, z]) if guidance else z
    rope = block.rope(4, 4, 1, 5, torch.float32, "cpu")
    last = block.sos_embed.expand(z.size(0), -1, -1)
    return block, z, y, rope, last


@pytest.mark.parametrize("threshold", [1e-3, 1e-6])
def test_committing_the_exact_prefix_changes_neither_answer_nor_sweeps(threshold):
    model, *_ = setup()
    block, z, y, rope, last = top_inputs(model, 2.0)
    opts = SamplerOptions(guidance=2.0, threshold=threshold, draft=False)
    caches = []
    for _ in range(2):
        caches.append(block.new_cache(2, 5 + 16, "cpu", torch.float32))
        block.prefill_text(y, caches[-1], rope)
    want, sweeps = full_sweeps(block, z, caches[0], rope, last, z, opts, 2.0)
    calls = []
    handle = block.proj_in.register_forward_pre_hook(lambda m, a: calls.append(a[0].size(1)))
    got, _ = invert_frame(block, z, caches[1], rope, last, z, 16, opts, 2.0)
    handle.remove()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert len(calls) == sweeps > 2
    assert calls == list(range(16, 16 - sweeps, -1))  # one token fewer each sweep
    assert caches[1].length == caches[0].length
    torch.testing.assert_close(caches[1].k[:, :, :, :21], caches[0].k[:, :, :, :21])


def test_bfloat16_draft_lands_on_the_float32_answer(monkeypatch):
    monkeypatch.setattr(sampling, "fast_bfloat16", lambda device: True)
    model, noise, y, y_null = setup()
    tight = dict(guidance=2.0, block_size=4, max_iter=64, threshold=1e-10)
    want = sample(model, noise, y, y_null, SamplerOptions(jacobi=False, guidance=2.0))
    plain = sample(model, noise, y, y_null, SamplerOptions(**tight, draft=False))
    drafted = sample(model, noise, y, y_null, SamplerOptions(**tight, draft=True))
    torch.testing.assert_close(plain, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(drafted, want, rtol=1e-4, atol=1e-4)


def test_draft_sweeps_replace_most_float32_sweeps(monkeypatch):
    monkeypatch.setattr(sampling, "fast_bfloat16", lambda device: True)
    model, noise, y, y_null = setup()
    opts = SamplerOptions(guidance=2.0, threshold=1e-4, draft=True)
    draft = make_draft(model.top, model.top.rope(4, 4, 3, 5, torch.float32, "cpu"), opts)
    assert draft.block.proj_in.weight.dtype == torch.bfloat16
    counts = {torch.float32: 0, torch.bfloat16: 0}

    def count(_module, args):
        counts[args[0].dtype] += 1

    handles = [b.proj_in.register_forward_pre_hook(count) for b in (model.top, draft.block)]
    drafted = sample(model, noise, y, y_null, opts)
    full = counts[torch.float32]
    counts.update({torch.float32: 0, torch.bfloat16: 0})
    plain = sample(
        model, noise, y, y_null, SamplerOptions(guidance=2.0, threshold=1e-4, draft=False)
    )
    for h in handles:
        h.remove()
    assert full < counts[torch.float32]
    want = sample(model, noise, y, y_null, SamplerOptions(jacobi=False, guidance=2.0))
    err = lambda x: ((x - want).norm() / want.norm()).item()  # noqa: E731
    assert err(drafted) <= 2 * err(plain) + 1e-4


def test_draft_is_made_only_where_it_can_pay(monkeypatch):
    model, *_ = setup()
    rope = model.top.rope(4, 4, 1, 5, torch.float32, "cpu")
    monkeypatch.setattr(sampling, "fast_bfloat16", lambda device: False)
    on = SamplerOptions(draft=True)
    assert make_draft(model.top, rope, on) is None
    monkeypatch.setattr(sampling, "fast_bfloat16", lambda device: True)
    assert make_draft(model.top, rope, SamplerOptions()) is None  # off by default
    assert make_draft(model.top, rope, SamplerOptions(jacobi=False, draft=True)) is None
    first = make_draft(model.top, rope, on)
    assert make_draft(model.top, rope, on).block is first.block  # kept
    with torch.no_grad():
        model.top.proj_in.weight.add_(1.0)
    again = make_draft(model.top, rope, on)
    assert again.block is not first.block  # changed weights: a new copy
    torch.testing.assert_close(
        again.block.proj_in.weight.float(), model.top.proj_in.weight, rtol=1e-2, atol=1e-2
    )
    low = random_model(tiny_config(), seed=3).to(torch.bfloat16)
    assert make_draft(low.top, rope, SamplerOptions()) is None


def test_draft_keys_stay_in_their_copy_and_commits_reach_it():
    cache = KVCache(2, 1, 2, 8, 4, "cpu", torch.float32, draft_dtype=torch.bfloat16)
    full = torch.randn(1, 2, 3, 4)
    keys, _ = cache.write(1, full, full)
    assert keys.dtype == torch.float32 and keys.shape[2] == 3
    cache.commit(2)
    torch.testing.assert_close(
        cache.draft[0][1, :, :, :2].float(), full[:, :, :2], rtol=1e-2, atol=1e-2
    )
    assert cache.draft[0][1, :, :, 2].abs().sum() == 0  # not committed: not copied
    low = torch.randn(1, 2, 2, 4).to(torch.bfloat16)
    keys, values = cache.write(0, low, low)
    assert keys.dtype == torch.bfloat16 and keys.shape[2] == 4
    assert cache.k[0, :, :, 2:4].abs().sum() == 0  # the float32 cache is untouched


def test_later_frames_start_from_the_last_frames_scale_and_shift(monkeypatch):
    model, noise, y, y_null = setup(frames=4)
    calls = []
    original = Jacobi.__init__

    def spy(self, block, z, x, *args):
        if block is model.top:
            calls.append(x.clone())
        original(self, block, z, x, *args)

    monkeypatch.setattr(Jacobi, "__init__", spy)
    sampler = sampling.FlowSampler(model, y, y_null, (4, 4), SamplerOptions(guidance=2.0), 4)
    z0, z1 = (sampler.top._to_block(model.patchify(noise[:, t : t + 1])[:, 0]) for t in (0, 1))
    sampler.next_frame(noise[:, 0])
    affine = sampler.top.affine
    torch.testing.assert_close(calls[0], z0)  # the first frame starts from its noise
    sampler.next_frame(noise[:, 1])
    torch.testing.assert_close(calls[-1], affine[1] + affine[0] * z1)


def test_rotate_with_signed_tables_is_the_pairwise_rotation():
    rot = Rotary(16)
    pos = torch.rand(7, 3) * 5
    cos, signed_sin = rot.cos_sin(pos, torch.float32, "cpu")
    x = torch.randn(2, 3, 7, 16)
    a = rot.angles(pos)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = a[:, 0::2].cos(), a[:, 0::2].sin()
    want = torch.stack([x0 * c - x1 * s, x1 * c + x0 * s], dim=-1).flatten(-2)
    torch.testing.assert_close(rotate(x, cos, signed_sin), want)
    # every path: sampling's complex product (also on an odd-offset view), training's, bfloat16
    odd = torch.cat([torch.zeros(2, 3, 7, 1), x], dim=-1)[..., 1:]
    torch.testing.assert_close(rotate(odd, cos, signed_sin), want)
    torch.testing.assert_close(rotate(x.requires_grad_(), cos, signed_sin), want)
    low = rotate(x.detach().bfloat16(), cos.bfloat16(), signed_sin.bfloat16())
    torch.testing.assert_close(low.float(), want, atol=0.05, rtol=0.02)
    assert math.isclose(float(signed_sin[3, 0]), -math.sin(float(a[3, 0])), abs_tol=1e-6)


def test_one_step_after_cached_keys_equals_the_whole_sequence():
    model, *_ = setup()
    block = model.shallow[0]
    x = torch.randn(1, 1, 4, 4, 4)
    z, _ = block(x)
    rope = block.rope(4, 4, 1, 0, torch.float32, "cpu")
    cache = block.new_cache(1, 16, "cpu", torch.float32)
    tokens = x.reshape(1, 16, 4)
    inputs = block.inputs(sampling.permute(tokens, block.order, 1))
    block.step(inputs[:, :5], cache, rope)
    cache.commit(5)
    scale, shift = block.step(inputs[:, 5:], cache, rope)  # 11 queries after 5 cached keys
    want = sampling.permute(z.reshape(1, 16, 4), block.order, 1)[:, 5:]
    got = (sampling.permute(tokens, block.order, 1)[:, 5:] - shift) / scale
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_shallow_blocks_take_whole_frames_and_a_tighter_threshold(monkeypatch):
    model, noise, y, y_null = setup(frames=1)
    seen = []
    original = sampling.invert_frame

    def spy(block, z, cache, rope, last, init, chunk, opts, *args, **kwargs):
        seen.append((block is model.top, chunk, opts.threshold))
        return original(block, z, cache, rope, last, init, chunk, opts, *args, **kwargs)

    monkeypatch.setattr(sampling, "invert_frame", spy)
    sample(model, noise, y, y_null, SamplerOptions(guidance=2.0, block_size=3, threshold=1e-3))
    shallow = [s for s in seen if not s[0]]
    assert len(shallow) == len(model.shallow)
    assert all(chunk == 12 for _, chunk, _ in shallow)
    assert all(th == pytest.approx(sampling.SHALLOW_THRESHOLD * 1e-3) for *_, th in shallow)
    assert [s[1:] for s in seen if s[0]] == [(3, 1e-3)]  # the top block's first frame


def test_reference_benchmark_runs_without_the_reference():
    """benchmarks/vs_reference.py, small: the project's rows, agreement and breakdown printed."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_reference.py"
    args = ["--frames", "2", "--size", "4x4", "--repeats", "1", "--breakdown"]
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    row = re.search(
        r"\| project \(default\) \| ([\d.]+) \| ([\d.]+) \| (\d+) / (\d+) \|", out.stdout
    )
    assert row and int(row[3]) > 0 and int(row[4]) > 0, out.stdout
    rms = float(
        re.search(r"\| project \(default\) \|.*\| ([\d.e+-]+) \| [\d.e+-]+ \|", out.stdout)[1]
    )
    assert rms < 0.05
    assert "top block: first frame" in out.stdout and "matrix products" in out.stdout
    assert re.search(r"sweeps per frame to 0.001", out.stdout)


def test_chunks_grow_where_the_iteration_contracts_fast_and_keep_their_size_where_it_does_not():
    model, *_ = setup()
    block = model.top
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, 256, 4, generator=g)  # a 16 x 16 frame
    z = torch.cat([z, z])
    y = torch.randn(2, 5, 8, generator=g)
    rope = block.rope(16, 16, 1, 5, torch.float32, "cpu")
    last = block.sos_embed.expand(2, -1, -1)

    def chunks(threshold, grow=True):
        cache = block.new_cache(2, 5 + 256, "cpu", torch.float32)
        block.prefill_text(y, cache, rope)
        sizes, original = [], Jacobi.__init__

        def spy(self, block_, z_, x, affine, cache_, last_, s, e, guidance):
            sizes.append(e - s)
            original(self, block_, z_, x, affine, cache_, last_, s, e, guidance)

        Jacobi.__init__ = spy
        try:
            opts = SamplerOptions(guidance=2.0, threshold=threshold, max_iter=64, grow=grow)
            x, _ = invert_frame(block, z, cache, rope, last, z, 48, opts, 2.0)
        finally:
            Jacobi.__init__ = original
        return sizes, x

    fast, x_fast = chunks(1e-3)  # about 10 sweeps a chunk: 48, then 96, then at most 4 x 48
    assert fast == [48, 96, 112]
    assert chunks(1e-3, grow=False)[0] == [48] * 5 + [16]  # switched off: the given size
    exact, x_exact = chunks(0.0)  # never below the threshold: every token takes its sweep
    assert exact == [48] * 5 + [16]
    assert (x_fast - x_exact).norm() / x_exact.norm() < 0.02
