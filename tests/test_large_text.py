"""The 7B prompt template (character for character) and the T5 encoder on a tiny random config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.api import EngineError, GenerateRequest
from engine.starflow_v.text import (
    MAX_TOKENS,
    PromptTemplate,
    T5TextEncoder,
    format_prompt,
    noise_level,
)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = "a the red circle moves left on black background video with fps noise level in aspect ratio image"


def tiny_tokenizer():
    """A word-level tokenizer built offline, wrapped like T5's: pad 0, eos 1 appended, unk 2."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in dict.fromkeys(WORDS.split() + [str(n) for n in range(10)] + list(":.()")):
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_config():
    return transformers.T5Config(
        vocab_size=64, d_model=16, d_kv=4, num_heads=2, d_ff=32, num_layers=1, dropout_rate=0.0
    )


@pytest.fixture
def encoder() -> T5TextEncoder:
    return T5TextEncoder.from_config(tiny_config(), tiny_tokenizer())


# ---- template -----------------------------------------------------------------------------------
def test_video_template_matches_the_reference_character_for_character():
    text = format_prompt("a corgi", fps=16, noise_std=0.5, aspect_ratio="16:9")
    assert text == "Noise Level 500:\nA video with 16 fps:\na corgi\n\n in a 16:9 aspect ratio.\n"


def test_image_template_and_missing_parts():
    assert format_prompt("x", fps=0, noise_std=0.5, aspect_ratio="1:1") == (
        "Noise Level 500:\nAn image:\nx\n\n in a 1:1 aspect ratio.\n"
    )
    # fps None: no fps line at all (and no newline after the caption)
    assert format_prompt("x", fps=None, noise_std=0.5, aspect_ratio=None) == "Noise Level 500:\nx"
    assert (
        format_prompt("x", fps=None, noise_std=None, aspect_ratio="9:16")
        == "x\n in a 9:16 aspect ratio.\n"
    )
    assert format_prompt("x", fps=None, noise_std=None, aspect_ratio=None) == "x"


def test_noise_level_truncates_like_the_reference():
    assert noise_level(0.5) == 500
    assert noise_level(0.3) == 300
    assert noise_level(0.0289) == int(0.0289 * 1000)  # truncation, not rounding


def test_task_prefix_goes_before_the_caption_and_null_prompt_is_the_empty_caption():
    t = PromptTemplate(fps=16, noise_std=0.5, aspect_ratio="16:9")
    req = GenerateRequest(
        prompt="more waves", mode="extend", video=np.zeros((1, 16, 16, 3), np.uint8)
    )
    assert (
        t(req.text)
        == "Noise Level 500:\nA video with 16 fps:\n(extend) more waves\n\n in a 16:9 aspect ratio.\n"
    )
    assert format_prompt("make it red", mode="v2v").split("\n")[2] == "(v2v) make it red"
    assert t.null == "Noise Level 500:\nA video with 16 fps:\n\n\n in a 16:9 aspect ratio.\n"


# ---- encoder ------------------------------------------------------------------------------------
def test_encode_shapes_mask_and_zeroed_padding(encoder: T5TextEncoder):
    texts = [format_prompt("a red circle moves left"), ""]
    emb, mask = encoder.encode(texts)
    assert emb.shape == (2, MAX_TOKENS, 16) and emb.dtype == torch.float32
    assert mask.shape == (2, MAX_TOKENS) and mask.dtype == torch.bool
    ids, _ = encoder.tokenize(texts)
    assert mask.tolist() == (ids != 0).tolist()
    assert mask[1].sum() == 1  # the empty string is just </s>
    assert torch.all(emb[~mask] == 0) and torch.all(emb[mask].abs().sum(-1) > 0)


def test_encoding_matches_t5_run_directly_and_truncates(encoder: T5TextEncoder):
    long = " ".join(["red"] * 400)
    emb, mask = encoder.encode([long, "a circle"])
    assert mask[0].all()
    ids, att = encoder.tokenize([long, "a circle"])
    assert ids[0, -1] == 1  # eos kept after truncation
    ref = encoder.model(input_ids=ids, attention_mask=att).last_hidden_state * att[..., None]
    torch.testing.assert_close(emb, ref)


def test_offload_moves_the_encoder_back_after_use(monkeypatch, encoder: T5TextEncoder):
    state = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    expected, _ = encoder.encode(["a circle"])
    off = T5TextEncoder(
        encoder.model,
        encoder.tokenizer,
        device="cpu",
        offload_after_use=True,
        offload_device="meta",
    )
    assert off.model.device.type == "meta"  # waits off the compute device
    moves: list[str] = []
    real_to = off.model.to

    def spy(device):
        moves.append(torch.device(device).type)
        if torch.device(device).type == "meta":
            return real_to(device)
        off.model.to_empty(device=device)  # meta -> compute device: bring the weights back
        off.model.load_state_dict(state)
        return off.model

    monkeypatch.setattr(off.model, "to", spy)
    emb, _ = off.encode(["a circle"])
    assert moves == ["cpu", "meta"]
    torch.testing.assert_close(emb, expected)


def test_from_pretrained_reads_a_saved_folder_offline(tmp_path, encoder: T5TextEncoder):
    encoder.model.save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    loaded = T5TextEncoder.from_pretrained(str(tmp_path), local_files_only=True)
    a, _ = encoder.encode(["a red circle"])
    b, _ = loaded.encode(["a red circle"])
    torch.testing.assert_close(a, b)
    assert loaded.dim == 16


def test_missing_encoder_is_an_engine_error(tmp_path):
    with pytest.raises(EngineError, match="text encoder"):
        T5TextEncoder.from_pretrained(str(tmp_path / "nowhere"), local_files_only=True)
    with pytest.raises(EngineError):
        T5TextEncoder.from_config(tiny_config(), tiny_tokenizer()).encode([])
