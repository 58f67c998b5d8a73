"""Fault injection on the command line and the engine's inputs (issue 31, points 3-8).

Each case is replayed through `engine.cli.main` (or the evaluation's entry point, or a real
`python -m engine` process where signals, resource limits or stderr matter) and must end with
exit status 2 (or the right handling), one line naming the file or field, no traceback, its inputs
unchanged and nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.api import EngineError
from engine.checkpoint import convert_to_safetensors, open_state_dict
from engine.cli import main
from engine.demo.bundle import DEMO_MODEL
from engine.demo.eval import main as eval_main
from engine.frames import fit_frame
from engine.media import VideoWriter, atomic_write, read_image, write_png
from engine_utils import random_model, tiny_config

OK = "a large red circle moves left on a black background"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def refused(caplog, argv: list[str], *needles: str, inputs: tuple[Path, ...] = ()) -> str:
    """main(argv) exits 2 with one error line holding every needle, no traceback, its inputs
    unchanged and no temporary file left beside them or in the working folders."""
    before = {p: digest(p) for p in inputs}
    caplog.clear()
    status = main(argv)
    lines = errors(caplog)
    assert status == 2, (argv, lines)
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "Traceback" not in caplog.text
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    for path, value in before.items():
        assert digest(path) == value, f"{path} changed"
        assert not leftovers(path.parent), leftovers(path.parent)
    return lines[0]


def tiny_clip(path: Path, frames: int = 2) -> Path:
    with VideoWriter(path, 16, 64, 48) as w:
        w.write(np.full((frames, 48, 64, 3), 90, np.uint8))
    return path


def png(path: Path, image: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def bundle(tmp_path: Path, change=None, weights: dict | None = None) -> Path:
    """A copy of the demo bundle's JSON, changed by `change(meta)`, beside its weights (a link to
    the shipped file, or `weights` written out)."""
    meta = json.loads(DEMO_MODEL.read_text())
    if change is not None:
        change(meta)
    path = tmp_path / "model" / "m.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(meta))
    if weights is None:
        path.with_suffix(".safetensors").symlink_to(DEMO_MODEL.with_suffix(".safetensors"))
    else:
        save_file(weights, str(path.with_suffix(".safetensors")))
    return path


def read_only_dir(tmp_path: Path) -> Path:
    """A folder new files cannot be created in (root ignores modes: /sys refuses it too)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def engine_process(*args: str, cwd: Path, limit_bytes: int | None = None) -> subprocess.Popen:
    """A real `python -m engine` process (its own stderr, signals, resource limits)."""

    def limits() -> None:
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        preexec_fn=limits,
        env=env,
        cwd=cwd,  # not the checkout: the engine comes from sys.path, as in this process
    )


# ---- 3: outputs that are inputs, batch outputs -------------------------------------------------
def test_an_output_that_is_an_input_is_refused(tmp_path, caplog):
    clip = tiny_clip(tmp_path / "same.mp4")
    image = png(tmp_path / "same.png", np.full((48, 64, 3), 200, np.uint8))
    (tmp_path / "link.mp4").hardlink_to(image)  # another name, the same inode
    cfg = tiny_config()
    torch.save(random_model(cfg).state_dict(), tmp_path / "good.pth")
    (tmp_path / "alias.safetensors").hardlink_to(tmp_path / "good.pth")
    gen = ["generate", "--prompt", f"(extend) {OK}", "--frames", "2"]
    refused(caplog, [*gen, "--video", str(clip), "--out", str(clip)], "--video", inputs=(clip,))
    gen = ["generate", "--prompt", OK, "--frames", "2", "--image", str(image)]
    refused(caplog, [*gen, "--out", str(image)], "--image", str(image), inputs=(image,))
    refused(caplog, [*gen, "--out", str(tmp_path / "link.mp4")], "--image", inputs=(image,))
    weights = DEMO_MODEL.with_suffix(".safetensors")
    refused(caplog, [*gen, "--out", str(weights)], "--model", inputs=(weights,))
    good = tmp_path / "good.pth"
    refused(caplog, ["convert", str(good), "--out", str(good)], "good.pth", inputs=(good,))
    alias = tmp_path / "alias.safetensors"
    refused(caplog, ["convert", str(good), "--out", str(alias)], "alias", inputs=(good,))


def test_batch_outputs_stay_in_the_folder_are_distinct_and_typed_before_any_job(tmp_path, caplog):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    jobs = work / "jobs.jsonl"
    image = png(work / "start.png", np.full((48, 64, 3), 50, np.uint8))
    good = {"prompt": OK, "frames": 1, "out": "fine.mp4"}
    cases = {
        "../../x.mp4": ("not a file inside --out-dir", {"out": "../../x.mp4"}),
        "absolute": ("not a file inside --out-dir", {"out": str(tmp_path / "abs.mp4")}),
        "batch file": ("is the batch file input", {"out": "jobs.jsonl"}),
        "image": ("is the image input", {"image": str(image), "out": "start.png"}),
        "duplicate": ("also line 1's output", {"out": "fine.mp4"}),
        "number": ("out must be a file name, got 123", {"out": 123}),
        "prompt": ("prompt must be text", {"prompt": ["a", "list"]}),
        "image type": ("image must be a file name, got 5", {"image": 5}),
    }
    for name, (needle, change) in cases.items():
        jobs.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
        line = refused(caplog, ["batch", str(jobs), "--out-dir", str(work)], needle)
        assert line.startswith("error: jobs.jsonl:2: ") and line.endswith("; no job was run")
        assert sorted(p.name for p in work.iterdir()) == ["jobs.jsonl", "start.png"], name
        assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "abs.mp4").exists()


# ---- 4: limits before allocation ---------------------------------------------------------------
def test_sizes_counts_and_numbers_are_refused_before_anything_is_allocated(tmp_path, caplog):
    out = tmp_path / "x.mp4"
    gen = ["generate", "--prompt", OK, "--out", str(out)]
    t0 = time.perf_counter()
    refused(caplog, [*gen, "--frames", "1000000000000"], "frames", "1000000000000")
    for value, needle in (("1e300", "from 0 to 20"), ("nan", "a number"), ("-1", "from 0 to 20")):
        refused(caplog, [*gen, "--frames", "2", "--cfg", value], f"cfg must be {needle}")
    refused(caplog, [*gen, "--frames", "2", "--temperature", "1e300"], "temperature")
    assert time.perf_counter() - t0 < 5  # refused before the model is even loaded
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a red circle " * 800_000, "frames": 1}))
    refused(caplog, ["batch", str(jobs), "--out-dir", str(tmp_path)], "prompt too long")
    jobs.write_text(f'{{"prompt": "{OK}", "seed": 9007199254740993.0}}')  # read as 2^53 + 0
    refused(caplog, ["batch", str(jobs), "--out-dir", str(tmp_path)], "seed", "2^53")
    assert not out.exists() and not leftovers(tmp_path)


def test_frame_sizes_are_checked_against_the_model_and_the_memory(tmp_path, caplog, monkeypatch):
    def huge(meta):
        meta["width"] = meta["height"] = 100000

    out = tmp_path / "x.mp4"
    model = bundle(tmp_path, huge)
    gen = ["generate", "--prompt", OK, "--frames", "2", "--out", str(out)]
    refused(caplog, [*gen, "--model", str(model)], "m.json", "width", "100000")

    def big(meta):
        meta["width"] = meta["height"] = 2048

    model.with_suffix(".safetensors").unlink()
    model = bundle(tmp_path, big)
    monkeypatch.setattr("engine.limits.available_memory", lambda device="cpu": 2 * 10**9)
    line = refused(caplog, [*gen, "--model", str(model)], "m.json", "2048x2048", "2.0 GB is free")
    assert "needs at least" in line
    assert not out.exists() and not leftovers(tmp_path)


def test_narrow_images_are_refused_or_fitted_without_upscaling(tmp_path, caplog):
    import tracemalloc

    strip = png(tmp_path / "strip.png", np.zeros((1, 1_000_000, 3), np.uint8))
    assert strip.stat().st_size < 10_000
    with pytest.raises(EngineError, match=r"strip.png: 1000000 x 1 is too narrow"):
        read_image(strip)
    tracemalloc.start()
    frame = fit_frame(np.zeros((1, 100_000, 3), np.uint8), 64, 48)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert frame.shape == (48, 64, 3) and peak < 5_000_000, peak
    out = tmp_path / "x.mp4"
    argv = ["generate", "--prompt", OK, "--frames", "2", "--image", str(strip), "--out", str(out)]
    refused(caplog, argv, "strip.png", "too narrow", inputs=(strip,))
    assert not out.exists()


def test_a_seed_above_2_to_the_53_is_recorded_exactly_in_a_file_of_the_users_mode(tmp_path):
    seed = 2**53 + 1
    out = tmp_path / "s.mp4"
    old = os.umask(0o022)
    try:
        argv = ["generate", "--prompt", OK, "--frames", "1", "--seed", str(seed)]
        assert main([*argv, "--out", str(out)]) == 0
    finally:
        os.umask(old)
    with av.open(str(out)) as c:
        assert c.metadata["seed"] == str(seed)
    assert out.stat().st_mode & 0o777 == 0o644


# ---- 5: one-line messages for damaged files and bad options --------------------------------------
def test_convert_to_missing_read_only_or_full_places_is_one_line(tmp_path, caplog):
    cfg = tiny_config()
    src = tmp_path / "m.pth"
    torch.save(random_model(cfg).state_dict(), src)
    missing = tmp_path / "nowhere" / "m.safetensors"
    refused(caplog, ["convert", str(src), "--out", str(missing)], "folder not found", inputs=(src,))
    ro = read_only_dir(tmp_path) / "m.safetensors"
    refused(caplog, ["convert", str(src), "--out", str(ro)], "cannot write", inputs=(src,))
    odd = tmp_path / "odd.pth"
    torch.save({**random_model(cfg).state_dict(), "step": 7, "note": "x"}, odd)
    refused(caplog, ["convert", str(odd)], "odd.pth", "not tensors", "note, step", inputs=(odd,))
    assert not (tmp_path / "odd.safetensors").exists()
    # a full disk: the real process, its file size limited below the checkpoint's
    assert src.stat().st_size > 100_000
    proc = engine_process("convert", str(src), cwd=tmp_path, limit_bytes=20_000)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and "m.safetensors" in err, err
    assert not (tmp_path / "m.safetensors").exists() and not leftovers(tmp_path)


def test_damaged_bundles_and_safetensors_headers_are_named(tmp_path, caplog, monkeypatch):
    # the 7B's text encoder and VAE "found", so that its loader reaches the checkpoint's header
    monkeypatch.setattr("engine.starflow_v.parts.locate", lambda key, *a, **k: f"/local/{key}")
    out = tmp_path / "x.mp4"
    gen = ["generate", "--prompt", OK, "--frames", "2", "--out", str(out)]
    changes = {
        "sampling.jacobi_block_size": lambda m: m["sampling"].update(jacobi_block_size=0),
        "train_frames": lambda m: m.update(train_frames=-5),
        "sampling.temperature": lambda m: m["sampling"].update(temperature="hot"),
        "fps": lambda m: m.update(fps=float("nan")),
    }
    for field, change in changes.items():
        model = bundle(tmp_path, change)
        refused(caplog, [*gen, "--model", str(model)], "m.json", field, inputs=(model,))
        model.with_suffix(".safetensors").unlink()
    headers = {
        "no data_offsets": ({"a": {"dtype": "F32", "shape": [4]}}, "has no data_offsets"),
        "a list": ([1, 2], "header is a JSON list"),
        "offsets past the end": (
            {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 999]}},
            "is truncated",
        ),
    }
    for header, needle in headers.values():
        raw = json.dumps(header).encode()
        data = struct.pack("<Q", len(raw)) + raw + bytes(16)
        for model in (tmp_path / "big.safetensors", tmp_path / "model" / "m.safetensors"):
            model.parent.mkdir(exist_ok=True)
            model.write_bytes(data)
            if model.parent.name == "model":
                (model.parent / "m.json").write_text(DEMO_MODEL.read_text())
                model = model.parent / "m.json"
            refused(caplog, [*gen, "--model", str(model)], needle, inputs=(model,))
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--long-frames", "0"], "--long-frames must be at least 17, got 0"),
        (["--n", "-3"], "--n must be at least 1, got -3"),
        (["--guidance", "nan"], "--guidance must be from 0 to 20, got nan"),
        (["--json", "/sys/cases.json"], "--json: cannot write in /sys: Permission denied"),
        (["--json", "/nowhere/cases.json"], "--json: folder not found: /nowhere"),
    ],
)
def test_eval_options_are_checked_before_running(args, needle, capsys):
    assert eval_main(["shapes", "--truth-only", "--tasks", "t2v", *args]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {needle}"], err


def test_an_unexpected_error_is_one_line_without_debug(tmp_path, caplog, monkeypatch):
    def broken(args):
        raise KeyError("internal")

    monkeypatch.setattr("engine.cli.cmd_convert", broken)
    caplog.clear()
    assert main(["convert", str(tmp_path / "m.pth")]) == 1
    assert errors(caplog) == [
        "error: unexpected KeyError: 'internal' (run with --debug for the traceback)"
    ]
    with pytest.raises(KeyError):
        main(["--debug", "convert", str(tmp_path / "m.pth")])


# ---- 6: non-finite weights ---------------------------------------------------------------------
def test_nan_weights_are_refused_at_load_and_nothing_is_written(tmp_path, caplog):
    state = load_file(str(DEMO_MODEL.with_suffix(".safetensors")))
    name = next(k for k in state if k.startswith("flow.") and k.endswith("weight"))
    state[name] = state[name].clone()
    state[name].view(-1)[3] = float("nan")
    model = bundle(tmp_path, weights=state)
    out = tmp_path / "x.mp4"
    argv = ["generate", "--prompt", OK, "--frames", "2", "--model", str(model), "--out", str(out)]
    refused(caplog, argv, "NaN or infinite", name[len("flow.") :], inputs=(model,))
    state = load_file(str(DEMO_MODEL.with_suffix(".safetensors")))
    codec = next(k for k in state if k.startswith("codec.") and state[k].is_floating_point())
    state[codec] = torch.full_like(state[codec], float("inf"))
    model.with_suffix(".safetensors").unlink()
    model = bundle(tmp_path, weights=state)
    refused(caplog, argv, "m.safetensors (codec)", "NaN or infinite", inputs=(model,))
    assert not out.exists() and not leftovers(tmp_path)


# ---- 7: valid files accepted -------------------------------------------------------------------
def exif_orientation(jpeg: bytes, value: int) -> bytes:
    """A JPEG with an APP1 EXIF segment holding Orientation = value (as a phone writes it)."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, value, 0) + b"\x00\x00\x00\x00"
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_exif_orientation_and_trailing_bytes_are_honoured(tmp_path):
    img = np.zeros((30, 40, 3), np.uint8)
    img[:10, :10] = (255, 0, 0)  # red top-left
    img[:10, -10:] = (0, 0, 255)  # blue top-right
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    plain = buf.tobytes()
    shown = {
        1: img,
        3: img[::-1, ::-1],
        6: np.rot90(img, -1),  # the phone held upright: turned a quarter clockwise
        8: np.rot90(img, 1),
    }
    for value, expected in shown.items():
        path = tmp_path / f"o{value}.jpg"
        path.write_bytes(exif_orientation(plain, value))
        got = read_image(path)
        assert got.shape == expected.shape, value
        assert np.abs(got.astype(int) - expected).mean() < 6, value
    for suffix, data in ((".jpg", plain), (".png", png(tmp_path / "p.png", img).read_bytes())):
        path = tmp_path / f"tail{suffix}"
        path.write_bytes(data + b"\x00trailing bytes a camera or a tool appended" * 4)
        assert np.abs(read_image(path).astype(int) - img).mean() < 6, suffix


def test_an_old_format_pth_loads_weights_only(tmp_path):
    cfg = tiny_config()
    state = random_model(cfg).state_dict()
    old = tmp_path / "old.pth"
    torch.save(state, old, _use_new_zipfile_serialization=False)
    loaded = open_state_dict(old)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert convert_to_safetensors(old) == tmp_path / "old.safetensors"


# ---- 8: signals and permissions ----------------------------------------------------------------
@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_during_generate_ends_the_run_cleanly(tmp_path, name, status):
    out = tmp_path / "long.mp4"
    args = ("generate", "--prompt", OK, "--frames", "400", "--out", str(out))
    proc = engine_process(*args, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(tmp_path), "no .part appeared"
    time.sleep(0.5)  # frames are being written
    proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, (proc.returncode, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"stopped by {name}")
    assert not out.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        tiny_clip(tmp_path / "v.mp4")
        write_png(tmp_path / "f.png", np.zeros((4, 4, 3), np.uint8))
        atomic_write(tmp_path / "a.bin", lambda f: f.write(b"x"))
        cfg = tiny_config()
        torch.save(random_model(cfg).state_dict(), tmp_path / "m.pth")
        convert_to_safetensors(tmp_path / "m.pth")
    finally:
        os.umask(old)
    for name in ("v.mp4", "f.png", "a.bin", "m.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_the_pipeline_itself_refuses_runaway_counts_and_non_finite_output():
    """The editor calls the pipeline directly: a frame count past the limit is refused before
    anything runs, and a model that produces NaN stops with a message instead of black frames."""
    from engine.api import GenerateRequest
    from engine.limits import MAX_FRAMES
    from engine.registry import load_pipeline

    pipeline = load_pipeline(None, "cpu", "fp32")
    prompt = "a large red circle moves right on a black background"
    with pytest.raises(EngineError, match="at most"):
        next(pipeline.generate(GenerateRequest(prompt, frames=MAX_FRAMES + 1)))
    weight = pipeline.model.top.proj_in.weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.fill_(float("nan"))
        with pytest.raises(EngineError, match="NaN or infinite"):
            list(pipeline.generate(GenerateRequest(prompt, frames=2)))
    finally:
        with torch.no_grad():
            weight.copy_(saved)
