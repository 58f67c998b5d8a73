"""`python -m engine` end to end on the shipped demo model: files decoded, bad input refused."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.shapes.scoring import psnr
from engine.shapes.world import random_scene, render
from engine_utils import random_model, tiny_config


def decode(path) -> tuple[np.ndarray, dict]:
    with av.open(str(path)) as c:
        meta = dict(c.metadata)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return frames, meta


def test_generate_text_to_video(tmp_path):
    out = tmp_path / "clip.mp4"
    prompt = "a large red circle moves left on a black background"
    assert (
        main(["generate", "--prompt", prompt, "--frames", "5", "--seed", "1", "--out", str(out)])
        == 0
    )
    frames, meta = decode(out)
    assert frames.shape == (5, 48, 64, 3)
    assert meta.get("prompt") == prompt and meta.get("seed") == "1"
    assert not list(tmp_path.glob(".*part"))


def test_generate_image_to_video_keeps_the_first_frame(tmp_path):
    image = render(random_scene(np.random.default_rng(0)), 1)[0]
    cv2.imwrite(str(tmp_path / "start.png"), image[:, :, ::-1])
    out = tmp_path / "i2v.mp4"
    prompt = "a large red circle moves left on a black background"
    assert (
        main(
            [
                "generate",
                "--prompt",
                prompt,
                "--image",
                str(tmp_path / "start.png"),
                "--frames",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    frames, _ = decode(out)
    assert len(frames) == 4 and psnr(frames[0], image) > 30  # H.264 is lossy


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, caplog):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "x.mp4"
    ok = "a large red circle moves left on a black background"
    cases = [
        ["--prompt", ok, "--image", str(tmp_path / "broken.png")],
        ["--prompt", ok, "--image", str(tmp_path / "missing.png")],
        ["--prompt", "a purple circle moves left on a black background"],
        ["--prompt", "(v2v) remove the red circle"],
        ["--prompt", ok, "--model", str(tmp_path / "nope.json")],
    ]
    for args in cases:
        assert main(["generate", *args, "--frames", "2", "--out", str(out)]) == 2, args
        assert not out.exists()
    err = caplog.text
    assert "not a readable image" in err and "image not found" in err and "does not know" in err


def test_batch_loads_once_and_reports_failed_jobs(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "\n".join(
            json.dumps(j)
            for j in [
                {
                    "prompt": "a small blue square stays still on a white background",
                    "frames": 2,
                    "out": "a.mp4",
                },
                {"prompt": "a blue blob", "frames": 2, "out": "b.mp4"},
            ]
        )
    )
    assert main(["batch", str(jobs), "--out-dir", str(tmp_path / "out")]) == 2
    assert decode(tmp_path / "out" / "a.mp4")[0].shape[0] == 2
    assert not (tmp_path / "out" / "b.mp4").exists()
    jobs.write_text('{"prompt": "x", "colour": 3}\nnot json\n')
    assert main(["batch", str(jobs), "--out-dir", str(tmp_path / "out")]) == 2


def test_convert(tmp_path):
    cfg = tiny_config()
    torch.save(random_model(cfg).state_dict(), tmp_path / "m.pth")
    assert main(["convert", str(tmp_path / "m.pth")]) == 0
    assert (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("frames", [17])
def test_demo_model_loads_by_default_and_streams(frames):
    from engine.api import GenerateRequest
    from engine.pipeline import load_pipeline

    pipeline = load_pipeline()
    assert (pipeline.info.width, pipeline.info.height, pipeline.info.fps) == (64, 48, 16)
    request = GenerateRequest(
        prompt="a large green triangle moves up on a navy background", frames=frames
    )
    events = list(pipeline.generate(request))
    assert [e.start for e in events] == list(range(frames)) and events[-1].done == frames
