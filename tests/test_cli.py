"""`python -m engine` end to end on the shipped demo model: files decoded, bad input refused."""

from __future__ import annotations

import json
import logging
import math

import av
import cv2
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.demo.bundle import DEMO_MODEL as BUNDLE
from engine.demo.scoring import psnr
from engine.demo.world import random_scene, render
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


def test_temperature_flag_changes_the_samples_and_is_recorded(tmp_path):
    """--temperature scales the sampling noise: same seed, other frames; the file's metadata
    records the temperature used (the model's own default when no flag is given)."""
    prompt = "a large red circle moves left on a black background"
    clips = {}
    for name, extra in {
        "own": [],
        "cool": ["--temperature", "0.2"],
        "hot": ["--temperature", "1.2"],
    }.items():
        out = tmp_path / f"{name}.mp4"
        args = ["generate", "--prompt", prompt, "--frames", "3", "--seed", "4", "--out", str(out)]
        assert main(args + extra) == 0
        clips[name] = decode(out)
    default = json.loads(BUNDLE.read_text())["sampling"]["temperature"]
    assert clips["own"][1]["temperature"] == str(default)
    assert clips["cool"][1]["temperature"] == "0.2" and clips["hot"][1]["temperature"] == "1.2"
    own, cool, hot = (clips[k][0].astype(np.int16) for k in ("own", "cool", "hot"))
    # the flag reaches the sampler: other frames at 0.2 than at the default 0.5 (both near the
    # model's mode: they differ by 0.9 of 255 on average here), and far other ones at 1.2
    assert not np.array_equal(own, cool) and np.abs(cool - hot).mean() > 1


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
        ["--prompt", ok, "--temperature", "0"],
        ["--prompt", ok, "--temperature", "nan"],
        ["--prompt", ok, "--seed", "-1"],
        ["--prompt", ok, "--seed", str(2**64)],
    ]
    for args in cases:
        assert main(["generate", *args, "--frames", "2", "--out", str(out)]) == 2, args
        assert not out.exists()
    assert main(["generate", "--prompt", ok, "--frames", "-5", "--out", str(out)]) == 2
    assert not out.exists()
    err = caplog.text
    assert "not a readable image" in err and "image not found" in err and "does not know" in err
    assert "temperature must be a positive number up to 10, got 0.0" in err
    assert "seed must be an integer from 0 to" in err and "got -1" in err
    assert f"got {2**64}" in err and "frames must be positive" in err


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


def test_batch_jobs_take_a_temperature_and_refuse_bad_numbers(tmp_path, caplog):
    """A job's numbers must be numbers: every bad one is named with its line and field before
    any job runs (nothing is written), never a traceback; a job's temperature is used and
    recorded."""
    ok = "a small blue square stays still on a white background"
    good = {"prompt": ok, "frames": 2, "temperature": 0.3, "out": "cool.mp4"}
    jobs = [
        good,
        {"prompt": ok, "frames": 2, "seed": "abc", "out": "s.mp4"},
        {"prompt": ok, "frames": 2.5, "out": "f.mp4"},
        {"prompt": ok, "frames": 2, "temperature": "warm", "out": "t.mp4"},
        {"prompt": ok, "frames": 2, "temperature": -1, "out": "n.mp4"},
        {"prompt": ok, "frames": 2, "cfg": True, "out": "c.mp4"},
    ]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs))
    assert main(["batch", str(tmp_path / "jobs.jsonl"), "--out-dir", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    for message in (
        "jobs.jsonl:2: seed must be an integer, got 'abc'",
        "jobs.jsonl:3: frames must be an integer, got 2.5",
        "jobs.jsonl:4: temperature must be a number, got 'warm'",
        "jobs.jsonl:5: temperature must be a positive number up to 10, got -1.0",
        "jobs.jsonl:6: cfg must be a number, got True (5 problems); no job was run",
    ):
        assert message in caplog.text
    (tmp_path / "jobs.jsonl").write_text(json.dumps(good))
    assert main(["batch", str(tmp_path / "jobs.jsonl"), "--out-dir", str(tmp_path / "out")]) == 0
    frames, meta = decode(tmp_path / "out" / "cool.mp4")
    assert len(frames) == 2 and meta["temperature"] == "0.3"


def test_batch_jobs_sample_with_their_own_seeds(tmp_path):
    """A job's seed is the seed it samples with: the same frames as `generate --seed` gives, other
    frames for another seed, and the seed recorded in the file."""
    ok = "a small blue square moves right on a white background"
    jobs = [{"prompt": ok, "frames": 2, "seed": seed, "out": f"{seed}.mp4"} for seed in (1, 2)]
    (tmp_path / "jobs.jsonl").write_text("\n".join(json.dumps(j) for j in jobs))
    assert main(["batch", str(tmp_path / "jobs.jsonl"), "--out-dir", str(tmp_path)]) == 0
    one, two = decode(tmp_path / "1.mp4"), decode(tmp_path / "2.mp4")
    assert one[1]["seed"] == "1" and two[1]["seed"] == "2"
    args = ["generate", "--prompt", ok, "--frames", "2", "--seed", "1"]
    assert main([*args, "--out", str(tmp_path / "single.mp4")]) == 0
    assert psnr(one[0], decode(tmp_path / "single.mp4")[0]) > 40
    assert psnr(one[0], two[0]) < 35


def test_convert(tmp_path):
    cfg = tiny_config()
    torch.save(random_model(cfg).state_dict(), tmp_path / "m.pth")
    assert main(["convert", str(tmp_path / "m.pth")]) == 0
    assert (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("frames", [17])
def test_demo_model_loads_by_default_and_streams(frames):
    from engine.api import GenerateRequest
    from engine.registry import load_pipeline

    pipeline = load_pipeline()
    assert (pipeline.info.width, pipeline.info.height, pipeline.info.fps) == (64, 48, 16)
    request = GenerateRequest(
        prompt="a large green triangle moves up on a navy background", frames=frames
    )
    events = list(pipeline.generate(request))
    assert [e.start for e in events] == list(range(frames)) and events[-1].done == frames


def test_edits_run_in_whole_segments_and_follow_the_source_frame_by_frame():
    """The demo model edits in segments of 8 source frames followed by their 8 edited frames. The
    17th frame of a 17-frame edit is edited after the 8 source frames ending at it (not after the
    one source frame left), and a longer edit loops the source: output frame t edits source frame
    t modulo its length. Each segment samples with the request's seed plus its first frame."""
    import dataclasses

    from engine.api import GenerateRequest
    from engine.registry import load_pipeline

    pipeline = load_pipeline()
    assert pipeline.settings.v2v_segment == 8
    pipeline.settings = dataclasses.replace(pipeline.settings, v2v_carry=0)
    rng = np.random.default_rng(5)
    source = render(random_scene(rng, 2), 17)
    text = "change the background to gray"

    def edit(video, seed, frames=0):  # 0: as long as the video
        request = GenerateRequest(text, mode="v2v", seed=seed, video=video, frames=frames)
        events = list(pipeline.generate(request))
        assert [e.start for e in events] == list(range(events[-1].done))
        return np.concatenate([e.frames for e in events])

    whole = edit(source, 3)
    assert len(whole) == 17
    np.testing.assert_array_equal(whole[8:16], edit(source[8:16], 11))
    np.testing.assert_array_equal(whole[16], edit(source[9:17], 19)[-1])
    longer = edit(source, 3, frames=20)  # frames 17..19 edit source frames 0..2 again
    np.testing.assert_array_equal(longer[:17], whole)
    np.testing.assert_array_equal(longer[17:], edit(source[:8], 20)[:3])


def test_edit_segments_carry_the_edited_frames_before_them(monkeypatch):
    """v2v_carry 2: a segment after the first starts 2 source frames early and takes the edited
    frames already made of those as context after its source frames (the training layout with its
    first edited frames given); its new frames follow on. The first segment is as without carry;
    the last one, cut short by the end of the source, takes every edited frame in its window. A
    carry of a whole segment is refused."""
    import dataclasses

    from engine.api import GenerateRequest
    from engine.demo.pipeline import DemoSettings
    from engine.registry import load_pipeline

    pipeline = load_pipeline()
    source = render(random_scene(np.random.default_rng(5), 2), 17)
    text = "add a small green triangle that moves up"

    def edit(carry, frames=0):
        pipeline.settings = dataclasses.replace(pipeline.settings, v2v_segment=8, v2v_carry=carry)
        request = GenerateRequest(text, mode="v2v", seed=3, video=source, frames=frames)
        events = list(pipeline.generate(request))
        assert [e.start for e in events] == list(range(events[-1].done))
        return np.concatenate([e.frames for e in events])

    plain = edit(0)
    encoded = []
    real_encode = pipeline.encode
    monkeypatch.setattr(
        pipeline, "encode", lambda f, seed: encoded.append(f.copy()) or real_encode(f, seed)
    )
    carried = edit(2)
    assert len(carried) == 17
    np.testing.assert_array_equal(carried[:8], plain[:8])
    assert not np.array_equal(carried[8:], plain[8:])
    # segments: source 0..7 -> frames 0..7; source 6..13 + frames 6, 7 -> frames 8..13;
    # source 9..16 + frames 9..13 -> frames 14..16
    expected = [source[0:8], source[6:14], carried[6:8], source[9:17], carried[9:14]]
    assert len(encoded) == len(expected)
    for got, want in zip(encoded, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    encoded.clear()
    longer = edit(2, frames=20)  # frames 17..19 edit source frames 0..2 again, carrying nothing
    np.testing.assert_array_equal(longer[:17], carried)
    assert len(longer) == 20 and len(encoded) == 6
    np.testing.assert_array_equal(encoded[-1], source[0:8])
    for carry in (-1, 8):
        with pytest.raises(ValueError, match="v2v_carry"):
            DemoSettings(train_latent_frames=17, v2v_segment=8, v2v_carry=carry)


def test_a_precision_the_cpu_emulates_is_warned_about_at_load(monkeypatch, caplog):
    """bf16 on a CPU without native bfloat16 is ~90x slower per product than fp32 on an AVX2-only
    EPYC: the load measures the factor and its ModelInfo (and log) say so, naming the fast choice.
    The limit is moved so the test does not depend on this machine's CPU."""
    import engine.device as device_module
    from engine.device import precision_slowdown, precision_warnings
    from engine.registry import load_pipeline
    from engine.registry import load_pipeline as load_any  # noqa: F401

    cpu = torch.device("cpu")
    assert precision_slowdown(cpu, torch.bfloat16) > 0
    assert precision_warnings(cpu, torch.float32, limit=0.0) == ()  # fp32 measures nothing
    assert precision_warnings(cpu, torch.bfloat16, limit=math.inf) == ()
    (text,) = precision_warnings(cpu, torch.bfloat16, limit=0.0)
    assert text.startswith("bf16 matrix products take") and "fp32" in text and "auto" in text

    monkeypatch.setattr(device_module, "SLOW_PRECISION", 0.0)
    with caplog.at_level(logging.WARNING, logger="engine.device"):
        slow = load_pipeline(None, "cpu", "bf16")
    assert slow.info.dtype == "bfloat16" and len(slow.info.warnings) == 1
    assert "fp32" in caplog.text
    assert load_pipeline(None, "cpu", "fp32").info.warnings == ()


def test_guided_edits_take_the_models_unconditional_text():
    """v2v_null "task": guidance's unconditional text of an edit is "(v2v) ", the instruction
    dropped (what a model trained with --drop-to-task learnt), instead of "": other frames with
    guidance, the same without it; other modes keep ""."""
    import dataclasses

    from engine.api import GenerateRequest
    from engine.registry import load_pipeline

    pipeline = load_pipeline()
    source = render(random_scene(np.random.default_rng(2), 2), 8)

    def frames(mode, null, guidance, **kw):
        pipeline.settings = dataclasses.replace(pipeline.settings, v2v_null=null)
        request = GenerateRequest(
            "make the red circle blue"
            if mode == "v2v"
            else "a red circle moves left on a black background",
            mode=mode,
            seed=4,
            frames=3,
            guidance=guidance,
            **kw,
        )
        return np.concatenate([e.frames for e in pipeline.generate(request)])

    assert not np.array_equal(
        frames("v2v", "empty", 2.5, video=source), frames("v2v", "task", 2.5, video=source)
    )
    assert np.array_equal(
        frames("v2v", "empty", 0.0, video=source), frames("v2v", "task", 0.0, video=source)
    )
    assert np.array_equal(frames("t2v", "empty", 2.5), frames("t2v", "task", 2.5))
