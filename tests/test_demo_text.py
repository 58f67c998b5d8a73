"""The demo text encoder: closed grammar vocabulary, null prompt, padding, errors, config round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.api import EngineError
from engine.demo.captions import random_edit
from engine.demo.text import DemoTextEncoder, TextConfig, grammar_vocab
from engine.demo.world import caption, random_scene

pytestmark = pytest.mark.usefixtures("one_thread")


def encoder(**changes) -> DemoTextEncoder:
    torch.manual_seed(0)
    return DemoTextEncoder(TextConfig(vocab=grammar_vocab(), dim=32, **changes)).eval()


def test_every_caption_and_instruction_of_the_grammar_tokenizes():
    enc = encoder()
    rng = np.random.default_rng(0)
    texts = []
    for _ in range(300):
        scene = random_scene(rng)
        instruction, _ = random_edit(scene, rng)
        texts += [caption(scene), "(extend) " + caption(scene), "(v2v) " + instruction]
    ids = enc.tokenizer(texts)
    lengths = (ids != 0).sum(1)
    assert lengths.max() < enc.max_tokens
    assert lengths.tolist() == [len(t.split()) + 1 for t in texts]  # <bos> + one id per word


def test_null_prompt_is_one_learned_token_and_padding_is_zero():
    enc = encoder()
    emb, mask = enc.encode(["", "(v2v) remove the red circle"])
    assert emb.shape == (2, 24, 32) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [1, 6]
    assert emb[0, 0].abs().sum() > 0 and emb[0, 1:].abs().sum() == 0
    assert emb[1, 6:].abs().sum() == 0
    assert torch.isfinite(emb).all()


def test_padding_does_not_change_the_words_embeddings():
    enc = encoder()
    ids = enc.tokenizer(["a red circle moves left on a black background"])
    short, _ = enc(ids[:, :12])
    full, _ = enc(ids)
    torch.testing.assert_close(short, full[:, :12])


def test_case_and_final_full_stop_are_ignored():
    enc = encoder()
    a, _ = enc.encode(["A red circle moves left on a black background."])
    b, _ = enc.encode(["a red circle moves left on a black background"])
    torch.testing.assert_close(a, b)


def test_unknown_words_and_long_prompts_raise_clear_errors():
    enc = encoder(max_tokens=8)
    with pytest.raises(EngineError, match="does not know the word.*'purple'.*'hexagon'"):
        enc.encode(["a purple hexagon moves left"])
    with pytest.raises(EngineError, match="does not know"):
        enc.encode(["<bos> a red circle"])
    with pytest.raises(EngineError, match="too long.*at most 7"):
        enc.encode(["a red circle moves left on a black background"])


def test_config_round_trip_rebuilds_the_same_encoder():
    enc = encoder(layers=2)
    again = DemoTextEncoder.from_config(enc.cfg.to_dict()).eval()
    again.load_state_dict(enc.state_dict())
    text = ["(extend) a small cyan square bounces around on a navy background"]
    torch.testing.assert_close(enc.encode(text)[0], again.encode(text)[0])
