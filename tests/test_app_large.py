"""The editor driving the 7B pipeline's code path (T5 template, Wan VAE with streaming decode,
STARFlow-V flow) on tiny random parts: every mode lands a clip of the model's frame size."""

from __future__ import annotations

import numpy as np
import pytest
from test_app import drop_files, run_job, type_prompt, write_png

from app_utils import close_editor, open_editor

pytest.importorskip("diffusers")
from test_large_pipeline import tiny_large_pipeline  # noqa: E402

_PIPELINE = []


def tiny_loader(model, device, precision):
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
        i2v = run_job(qtbot, ed, lambda: drop_files(qtbot, w.preview.canvas, [path]))
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
