"""End to end at the 7B's true widths on the CPU: a reduced-depth STARFlow-V (one layer per block,
one denoiser layer, tiny frames) with the released model's channels (3072, top block 4096), 48
latent channels, text width 2048, head dim 64 and denoiser window 10, beside a T5 folder of width
2048 and a tiny Wan VAE folder, through the real command line (text to video, image to video,
extend, an edit, a sliding-window clip) and the real editor (text to video, extend).
benchmarks/true_widths_e2e.py runs the same path bigger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.starflow_v.config_file import builtin_spec

av = pytest.importorskip("av")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")
from test_large_text import tiny_tokenizer  # noqa: E402
from test_large_vae import TINY  # noqa: E402

SIDE = 32  # pixels: img_size 2 latent -> 32 x 48 frames at 16:9 (2 x 3 latent tokens)
HEIGHT, WIDTH = 32, 48


def true_width_config(img_size: int = SIDE // 16, layers: int = 1):
    """The 7B's configuration (the shipped manifest's) at reduced depth and frame size."""
    cfg = builtin_spec().flow
    return cfg.replace(
        layers_per_block=(layers,) * cfg.num_blocks, denoiser_layers=layers, img_size=img_size
    )


def t5_config():
    """T5 at the 7B's text width (flan-t5-xl's d_model 2048), one narrow layer."""
    return transformers.T5Config(
        vocab_size=64, d_model=2048, d_kv=8, num_heads=2, d_ff=32, num_layers=1, dropout_rate=0.0
    )


def write_true_width_model(root: Path, img_size: int = SIDE // 16, layers: int = 1) -> Path:
    """model.safetensors (random, small std so sampling stays finite) with our JSON config beside
    it naming a T5 folder and a Wan VAE folder; returns the checkpoint's path."""
    from safetensors.torch import save_file

    from engine.checkpoint import build_model

    torch.manual_seed(0)
    transformers.T5EncoderModel(t5_config()).save_pretrained(root / "t5")
    tiny_tokenizer().save_pretrained(root / "t5")
    diffusers.AutoencoderKLWan(**TINY).save_pretrained(root / "wan" / "vae")
    cfg = true_width_config(img_size, layers)
    flow = build_model(cfg, None)
    generator = torch.Generator().manual_seed(0)
    for p in flow.parameters():
        p.normal_(std=0.02, generator=generator)
    checkpoint = root / "model.safetensors"
    save_file({k: v.contiguous() for k, v in flow.state_dict().items()}, str(checkpoint))
    del flow
    ours = {"config": cfg.to_dict(), "text": str(root / "t5"), "vae": str(root / "wan")}
    (root / "model.json").write_text(json.dumps(ours))
    return checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_true_width_model(tmp_path_factory.mktemp("true_widths"))


def read_frames(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def assert_moving_picture(frames: np.ndarray, count: int) -> None:
    """`count` frames of the model's size, not black or constant, not all the same."""
    assert frames.shape == (count, HEIGHT, WIDTH, 3), frames.shape
    assert all(f.std() > 1.0 for f in frames), [float(f.std()) for f in frames]
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])


def generate(model: Path, out: Path, prompt: str, frames: int, *extra: str) -> np.ndarray:
    args = ["generate", "--model", str(model), "--prompt", prompt, "--frames", str(frames)]
    assert main([*args, "--device", "cpu", "--dtype", "fp32", *extra, "--out", str(out)]) == 0
    return read_frames(out)


def test_every_mode_through_the_command_line(model, tmp_path):
    """t2v, i2v from a PNG, extend from the t2v clip, an edit of it, and a clip longer than a
    two-latent-frame window (the window slides)."""
    import cv2

    t2v = tmp_path / "t2v.mp4"
    assert_moving_picture(generate(model, t2v, "a red circle moves left", 5), 5)

    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    png = tmp_path / "start.png"
    cv2.imwrite(str(png), image)
    i2v = generate(model, tmp_path / "i2v.mp4", "a circle", 5, "--image", str(png))
    assert_moving_picture(i2v, 5)

    extend = generate(model, tmp_path / "ext.mp4", "(extend) a circle", 4, "--video", str(t2v))
    assert_moving_picture(extend, 4)

    edit = generate(model, tmp_path / "edit.mp4", "(v2v) remove the circle", 5, "--video", str(t2v))
    assert_moving_picture(edit, 5)

    slid = generate(model, tmp_path / "slid.mp4", "a red circle", 13, "--window", "2")
    assert_moving_picture(slid, 13)  # 4 latent frames through a window of 2


def test_the_editor_loads_it_and_lands_clips(qtbot, tmp_path, model):
    from test_app import run_job, type_prompt

    from app_utils import close_editor, demo_loader, open_editor

    ed = open_editor(qtbot, tmp_path, loader=demo_loader)
    try:
        s, w = ed.studio, ed.window
        with qtbot.waitSignal(s.model_loaded, timeout=120_000):
            s.load_model(str(model))
        assert (s.info.width, s.info.height) == (WIDTH, HEIGHT)
        assert (s.timeline.width, s.timeline.height) == (WIDTH, HEIGHT)
        type_prompt(qtbot, ed, "a red circle moves left")
        w.inspector.frames.setValue(5)
        t2v = run_job(qtbot, ed, s.generate, timeout=120_000)
        frames = s.timeline.clip_frames(t2v)
        assert frames.shape == (5, HEIGHT, WIDTH, 3) and frames.std() > 1.0
        s.timeline.select(t2v)
        extended = run_job(qtbot, ed, lambda: s.extend(frames=4), timeout=120_000)
        clip = s.timeline.clip(extended)
        assert clip.request.mode == "extend" and clip.length == 4
        assert s.timeline.clip_frames(extended).shape == (4, HEIGHT, WIDTH, 3)
        assert not s.messages.errors()
    finally:
        close_editor(ed)
