"""The editor driving the 7B pipeline's code path (T5 template, Wan VAE with streaming decode,
STARFlow-V flow) on tiny random parts: every mode lands a clip of the model's frame size; Engine >
Settings reaches the loader (memory preset from the card, offload, window, aspect ratio) and
the 7B's guidance default."""

from __future__ import annotations

import threading
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from test_app import drop_files, run_job, type_prompt, write_png

from app.engine_thread import _in_editor_words
from app.state.engine_presets import CUSTOM, EngineOptions, preset_for, preset_named
from app_utils import close_editor, demo_loader, open_editor
from engine.api import EngineError

pytest.importorskip("diffusers")
from test_large_pipeline import tiny_large_pipeline  # noqa: E402

_PIPELINE = []


def tiny_loader(model, device, precision, **options):
    if not _PIPELINE:
        _PIPELINE.append(tiny_large_pipeline())
    return _PIPELINE[0]


def test_every_mode_runs_through_the_large_pipeline(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path, loader=tiny_loader)
    try:
        s, w = ed.studio, ed.window
        info = s.info
        assert (s.timeline.width, s.timeline.height) == (info.width, info.height) == (48, 32)
        type_prompt(qtbot, ed, "a red circle moves left")
        w.inspector.frames.setValue(9)
        t2v = run_job(qtbot, ed, s.generate)
        assert s.timeline.clip_frames(t2v).shape == (9, 32, 48, 3)

        image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
        path = tmp_path / "start.png"
        write_png(path, image)
        w.inspector.frames.setValue(5)
        drop_files(qtbot, w.preview.canvas, [path])  # the start image; the prompt comes next
        qtbot.waitUntil(lambda: s.draft.image is not None)
        i2v = run_job(qtbot, ed, s.generate)
        assert s.timeline.clip(i2v).request.mode == "i2v" and s.timeline.clip(i2v).length == 5

        s.timeline.select(t2v)
        type_prompt(qtbot, ed, "remove the red circle")
        edited = run_job(qtbot, ed, s.edit)
        assert s.timeline.clip(edited).length == 9
        s.timeline.select(t2v)
        extended = run_job(qtbot, ed, lambda: s.extend(frames=8))
        assert s.timeline.clip(extended).request.mode == "extend"
        assert s.timeline.clip(extended).length == 8
        assert not s.messages.errors()
    finally:
        close_editor(ed)


GIB = 2**30


def test_the_card_picks_the_memory_preset():
    sizes = {79.2: "80 GB", 47.5: "48 GB", 44.4: "48 GB", 23.6: "24 GB", 15.7: "16 GB", 11: "16 GB"}
    assert {gib: preset_for(int(gib * GIB)).name for gib in sizes} == sizes
    assert preset_for(None) is None
    auto = EngineOptions()
    assert auto.memory(int(23.6 * GIB)) == preset_named("24 GB") and auto.memory(None) is None
    assert auto.loader_options(int(15.7 * GIB))["vae_on_cpu"] is True
    assert not auto.loader_options(None)["offload"] and auto.loader_options(None)["window"] is None
    assert EngineOptions(preset="80 GB").memory(int(23.6 * GIB)) == preset_named("80 GB")
    custom = EngineOptions(preset=CUSTOM, offload=True, window=0, vae_on_cpu=True).memory(None)
    assert (custom.offload, custom.window, custom.vae_on_cpu) == (True, None, True)


def test_out_of_memory_advice_names_the_editors_settings():
    advice = _in_editor_words("out of GPU memory: try fewer frames, a shorter window, or --offload")
    assert "Engine > Settings" in advice and "--offload" not in advice
    assert _in_editor_words("prompt too long") == "prompt too long"


def test_engine_settings_reach_the_loader_and_the_7b_takes_its_guidance(
    qtbot, tmp_path, monkeypatch
):
    """A 24 GB card: the automatic preset loads a checkpoint with offload and window 6; the
    dialog, driven (aspect 9:16, window 8 -> Custom, guidance 4), reloads it with those; the demo
    model gets no options and keeps its guidance 2.5."""
    calls = []

    def loader(model, device, precision, **options):
        calls.append((model, options))
        if options.get("config") == "bad.yaml":
            raise EngineError("model config bad.yaml: sos must be 1")
        return tiny_loader(model, device, precision) if model else demo_loader(None, "cpu", "auto")

    monkeypatch.setattr("app.generation.gpu_memory", lambda: int(23.6 * GIB))
    monkeypatch.setattr("app.state.engine_presets.gpu_memory", lambda: int(23.6 * GIB))
    ed = open_editor(qtbot, tmp_path, loader=loader)
    try:
        s, w = ed.studio, ed.window
        assert calls == [(None, {})] and s.draft.guidance == 2.5
        with qtbot.waitSignal(s.model_loaded, timeout=60_000):
            s.load_model(str(tmp_path / "starflow.safetensors"))
        parts = {"config": None, "text_encoder": None, "vae": None}
        assert calls[-1][1] == {
            "offload": True,
            "window": 6,
            "vae_on_cpu": False,
            "aspect_ratio": "16:9",
            **parts,
        }
        assert s.draft.guidance == 3.5 and w.inspector.guidance.value() == 3.5

        dialog = w.open_engine_settings()
        assert dialog.preset.currentText() == "Automatic (this card: 24 GB)"
        assert dialog.offload.isChecked() and dialog.window.value() == 6
        dialog.aspect.setCurrentText("9:16")
        dialog.window.setValue(8)
        assert dialog.preset.currentData() == CUSTOM
        dialog.guidance.setValue(4.0)
        with qtbot.waitSignal(s.model_loaded, timeout=60_000):
            dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
        assert calls[-1][1] == {
            "offload": True,
            "window": 8,
            "vae_on_cpu": False,
            "aspect_ratio": "9:16",
            **parts,
        }
        chosen = EngineOptions(CUSTOM, True, 8, "9:16", guidance=4.0)
        assert s.settings.engine_options == chosen and s.draft.guidance == 4.0
        s.settings.q.setValue("parts/vae", "/models/wan")  # checked in the model manager
        assert s.generation.loader_options()["vae"] == "/models/wan"

        job = SimpleNamespace(cancel=threading.Event())
        monkeypatch.setattr(s.jobs, "running", lambda: job)  # a job runs: asked, declined
        assert not s.generation.set_engine_options(EngineOptions())
        assert s.settings.engine_options == chosen and len(calls) == 3
        monkeypatch.undo()

        with qtbot.waitSignal(s.model_loaded, timeout=60_000):  # a bad config: the last good back
            s.generation.set_engine_options(replace(chosen, config="bad.yaml"))
        assert "bad.yaml: sos must be 1" in s.messages.errors()[-1].text
        assert calls[-1][1]["config"] is None and s.settings.engine_options == chosen

        with qtbot.waitSignal(s.model_loaded, timeout=60_000):
            s.load_model("")
        assert calls[-1] == (None, {}) and s.draft.guidance == 2.5
        assert len(s.messages.errors()) == 1  # the bad config's
    finally:
        close_editor(ed)
