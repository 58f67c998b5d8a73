"""The shipped demo model's PCA codec and word text encoder, and training resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.api import EngineError
from engine.demo.pca import PCACodec, WordText
from engine.shapes.world import random_scene, render
from engine.train import Trainer, default_meta


def frames_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None] / 127.5 - 1


def test_codec_round_trip_and_streaming():
    rng = np.random.default_rng(0)
    fit = np.concatenate([render(random_scene(rng), 2, int(rng.integers(0, 60))) for _ in range(300)])
    codec = PCACodec.fit(fit, 16)
    clip = frames_tensor(render(random_scene(rng), 5))
    z = codec.encode(clip)
    assert z.shape == (1, 5, 16, 6, 8)
    assert 0.5 < z.std().item() < 2.0  # components scaled to unit variance on the training domain
    out = codec.decode(z)
    psnr = 10 * np.log10(4 / ((out - clip) ** 2).mean().item())
    assert psnr > 25
    stream = codec.stream_decoder()
    streamed = torch.cat([stream.push(z[:, t]) for t in range(5)], dim=1)
    torch.testing.assert_close(streamed, out)


def test_text_encoder_zeroes_padding_and_rejects_unknown_words():
    enc = WordText()
    emb, mask = enc.encode(["(v2v) remove the red circle", ""])
    assert mask.sum(1).tolist() == [5, 0]
    assert emb[0, 5:].abs().sum() == 0 and emb[1].abs().sum() == 0
    with pytest.raises(EngineError, match="does not know the word"):
        enc.encode(["a purple circle"])


def test_training_resume_equals_uninterrupted(tmp_path):
    meta = default_meta(width=64, top_layers=1)
    meta["flow"]["channels"] = 64

    def trainer():
        return Trainer(meta, seed=1, device="cpu", lr=1e-3, steps=4, batch_size=2)

    straight = trainer()
    straight.train(4, tmp_path / "a", every=100)
    first = trainer()
    first.train(2, tmp_path / "b", every=2)
    resumed = trainer()
    resumed.resume(tmp_path / "b")
    assert resumed.step == 2
    resumed.train(4, tmp_path / "b", every=100)
    for (k, a), b in zip(straight.flow.state_dict().items(), resumed.flow.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    losses = [straight.losses(s)["nll"].item() for s in range(2)]
    assert all(np.isfinite(losses))
