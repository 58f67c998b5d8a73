"""The 7B's GPU memory measured on the meta device through the real pipeline: the ledger's
counting, the reference's fp32 KV cache, and the 24 / 48 GB presets at a 5-second 480p clip."""

from __future__ import annotations

import math

import pytest
import torch

from engine.starflow_v.loader import LargeOptions
from engine.starflow_v.memory import GIB, Ledger, flow_config, measure
from engine.starflow_v.sizes import frame_size, latent_frames

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


def test_the_ledger_counts_storages_once_and_frees_them():
    ledger = Ledger()
    with ledger:
        a = torch.empty(1024, device="meta")  # 4096 bytes
        b = a[:10].view(2, 5)  # a view: the same storage
        c = torch.empty(256, device="meta", dtype=torch.float16)  # 512 bytes
        host = torch.zeros(10)  # not on the measured device
        assert ledger.total == 4096 + 512
        del a
        assert ledger.total == 4096 + 512  # b still holds the storage
        del b, c
    assert ledger.total == 0 and ledger.peak == 4096 + 512 and host.sum() == 0


def test_the_reference_settings_give_its_fp32_kv_cache():
    """No window, guidance, fp32 (the reference's cache dtype), 81 frames at 16:9 480p: the deep
    block's cache is layers x (k, v) x batch 2 x (text + 21 x 1590 tokens) x channels x 4 bytes."""
    report = measure(LargeOptions(), frames=81, dtype=torch.float32, first_frame_only=True)
    cfg = flow_config()
    h, w = frame_size("16:9")
    tokens = cfg.txt_size + latent_frames(81) * (h // 16) * (w // 16)
    expected = cfg.layers_per_block[-1] * 2 * 2 * tokens * cfg.top_channels * 4
    assert max(report.caches) == expected
    assert math.isclose(expected / GIB, 49.3, abs_tol=0.05)


@pytest.mark.parametrize(
    "offload, window, vae_on_cpu, limit",
    [(True, 6, False, 22.0), (True, None, False, 44.0), (True, 3, True, 14.5)],
)
def test_the_memory_presets_make_a_five_second_clip_within_their_card(
    offload, window, vae_on_cpu, limit
):
    """The 24 GB preset (offload, window 6) at or under 22 GiB, the 48 GB one (offload) at or
    under 44 GiB, the 16 GB one (offload, window 3, the VAE in CPU memory) at or under 14.5 GiB:
    81 frames at 480p with guidance 3.5, bf16, every part of the path counted (the VAE's decode
    too, where it runs on the GPU)."""
    options = LargeOptions(offload=offload, window=window, vae_on_cpu=vae_on_cpu)
    report = measure(options, frames=81, guidance=3.5)
    assert report.frames == 81
    assert report.at_peak["kv cache"] > 0 and report.at_peak["flow weights"] > 0
    assert (report.at_peak.get("vae", 0) > 0) != vae_on_cpu and "host" not in report.at_peak
    assert report.peak / GIB <= limit, report.at_peak
