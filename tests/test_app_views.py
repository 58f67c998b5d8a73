"""The editor's seams without the engine: views built from models alone, the generation
controller turning a Draft into one request record, a Studio that starts no thread until asked."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage, QUndoStack

from app.generation import GenerationController
from app.state.draft import Draft, ImageSource
from app.state.jobs import Job, JobQueue
from app.state.messages import MessageLog
from app.state.request import ClipRequest, SourceRef
from app.state.timeline import Clip, Timeline, new_id
from app.widgets.inspector import InspectorView
from app.widgets.job_queue import JobQueueView
from app.widgets.preview import PreviewView
from app.widgets.timeline_view import TRACK_TOP, TimelineView
from app_utils import ScriptedDialogs, isolated_settings

PROMPT = "a large red circle moves right on a black background"


def no_loader(*_args):
    raise AssertionError("nothing here may load a model")


def timeline_with_clip(frames: int = 6) -> tuple[Timeline, Clip]:
    t = Timeline(64, 48, 16.0)
    pixels = np.random.default_rng(0).integers(0, 255, (frames, 48, 64, 3), dtype=np.uint8)
    media = t.add_media(pixels, "generated", "made")
    record = ClipRequest("t2v", PROMPT, 3, 2.5, frames, model="demo", temperature=0.3)
    clip = Clip(new_id("c"), media.id, 0, frames, "made", record)
    t.insert(0, clip)
    return t, clip


def test_views_are_built_from_models_without_an_engine(qtbot):
    timeline, clip = timeline_with_clip()
    jobs, draft = JobQueue(), Draft(seed=1, frames=9)

    inspector = InspectorView(draft, timeline, jobs)
    qtbot.addWidget(inspector)
    qtbot.keyClicks(inspector.prompt, PROMPT)  # view -> model
    assert draft.prompt == PROMPT
    draft.set(seed=42, mode="v2v")  # model -> view
    assert inspector.seed.value() == 42 and not inspector.frames.isEnabled()
    assert not inspector.regenerate_button.isEnabled()
    timeline.select(clip.id)
    assert inspector.heading.text() == "made" and inspector.regenerate_button.isEnabled()
    assert "temperature 0.3" in inspector.subheading.text()
    with qtbot.waitSignal(inspector.generate_requested, timeout=1000):
        qtbot.mouseClick(inspector.generate_button, Qt.MouseButton.LeftButton)

    preview = PreviewView(timeline, jobs)
    qtbot.addWidget(preview)
    assert "frame 0 of 0–5" in preview.counter.text()
    with qtbot.waitSignal(preview.frame_shown) as shown:
        preview.show_live_frame(7, 0, QImage(64, 48, QImage.Format.Format_RGB888))
    assert shown.args == ["live", 0] and preview.live_job == 7
    preview.end_live()
    assert preview.live_job is None and "frame 0 of 0–5" in preview.counter.text()

    view = TimelineView(timeline, jobs)
    qtbot.addWidget(view)
    view.resize(600, 140)
    view.show()
    timeline.select(None)
    x = int(view.canvas.x_of(2.5))
    with qtbot.waitSignal(view.seek_requested) as seek:
        qtbot.mousePress(view.canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, TRACK_TOP + 20))
    assert seek.args == [2] and timeline.selected == clip.id
    qtbot.mouseRelease(view.canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, TRACK_TOP + 20))
    assert "1 clip(s) · 6 frames" in view.summary.text()

    queue = JobQueueView(jobs)
    qtbot.addWidget(queue)
    record = ClipRequest("t2v", PROMPT, 5, 2.5, 4)
    job = jobs.add(Job(record, record.engine_request(), "Text: x"))
    assert queue.table.rowCount() == 1
    queue.select_job(job.id)
    with qtbot.waitSignal(queue.remove_requested) as removed:
        qtbot.mouseClick(queue.remove, Qt.MouseButton.LeftButton)
    assert removed.args == [job.id]


@pytest.fixture
def controller(qtbot, tmp_path):
    undo = QUndoStack()
    gen = GenerationController(
        isolated_settings(tmp_path), Timeline(), undo, MessageLog(), ScriptedDialogs(), no_loader
    )
    yield gen
    gen.shutdown()
    assert not gen.engine.thread.isRunning()


def test_a_draft_becomes_exactly_one_request_record(controller, monkeypatch):
    made = []
    to_engine = ClipRequest.engine_request

    def spy(record, image=None, video=None):
        made.append(record)
        return to_engine(record, image, video)

    monkeypatch.setattr(ClipRequest, "engine_request", spy)
    d = controller.draft
    d.set(prompt=f"  {PROMPT} ", seed=7, guidance=3.0, frames=9, temperature=0.4)
    job = controller.generate()
    record = ClipRequest("t2v", PROMPT, 7, 3.0, 9, None, "demo", 0.4)
    assert job.record == record and len(made) == 1 and replace(made[0], model="demo") == record
    r = job.request
    assert (r.mode, r.prompt, r.seed, r.guidance, r.frames, r.temperature) == (
        "t2v",
        PROMPT,
        7,
        3.0,
        9,
        0.4,
    )
    assert r.image is None and r.video is None and job.id == r.id
    assert not controller.engine.thread.isRunning()  # queued, waiting for the model
    assert "waiting for the model" in controller.messages.latest().text

    d.set(prompt="  ")  # refused once, with one message, and nothing queued
    assert controller.generate() is None and len(made) == 1
    assert controller.messages.latest("error").text == "Type a prompt first"

    start = np.full((48, 64, 3), 200, np.uint8)  # i2v: the start image becomes project media
    d.set(prompt=PROMPT, mode="i2v", image=ImageSource("start.png", start))
    job = controller.generate()
    media = controller.timeline.media[job.record.source.media]
    assert media.kind == "image" and job.record.source == SourceRef(media.id, 0, 1)
    np.testing.assert_array_equal(job.request.image, start)
    np.testing.assert_array_equal(media.frames[0], start)


def test_regenerate_resubmits_the_stored_record(controller):
    t = controller.timeline
    source, clip = timeline_with_clip(8)
    t.load_snapshot(source.snapshot())
    ref = SourceRef(clip.media, 2, 7)
    edited = ClipRequest("v2v", "make it blue", 3, 2.5, 5, ref, "demo", None)
    media = t.add_media(np.zeros((5, 48, 64, 3), np.uint8), "generated", "edit")
    take = Clip(new_id("c"), media.id, 0, 5, "edit", edited)
    t.insert(1, take)
    t.select(take.id)
    assert controller.draft.mode == "v2v" and controller.draft.prompt == "make it blue"

    before = controller.draft.seed
    job = controller.regenerate(seed=11)
    assert job.record == replace(edited, seed=11) and job.after == take.id
    np.testing.assert_array_equal(job.request.video, t.source_frames(ref))
    assert job.request.frames == 5 and controller.draft.seed == before != 11  # the field stays


def test_the_main_window_is_built_and_closed_without_an_engine_thread(qtbot, tmp_path):
    from app.main_window import MainWindow
    from app.studio import Studio

    studio = Studio(isolated_settings(tmp_path), loader=no_loader, dialogs=ScriptedDialogs())
    window = MainWindow(studio)
    qtbot.addWidget(window)
    window.show()
    studio.draft.set(prompt=PROMPT)
    qtbot.mouseClick(window.inspector.generate_button, Qt.MouseButton.LeftButton)
    assert [j.record.prompt for j in studio.jobs.queued()] == [PROMPT]
    assert window.job_queue.table.rowCount() == 1
    assert not studio.engine.thread.isRunning() and not studio.engine_ready
    window.shutdown()
    assert not studio.engine.thread.isRunning() and not studio.jobs.queued()


def test_a_start_image_left_in_the_draft_is_not_a_text_to_video_source(controller):
    d = controller.draft
    d.set(
        prompt=PROMPT, mode="i2v", image=ImageSource("start.png", np.zeros((48, 64, 3), np.uint8))
    )
    d.set(mode="t2v")
    job = controller.generate()
    assert job.record.source is None and job.request.image is None
    assert not controller.timeline.media


def test_the_length_steps_by_what_the_models_video_codec_makes(qtbot):
    """With the 7B's causal VAE (clips of 4n + 1 frames) the length steps by 4 and a typed 20
    becomes 21; with the demo's per-frame codec any length stays."""
    from PySide6.QtWidgets import QAbstractSpinBox

    from engine.api import ModelInfo

    timeline, _ = timeline_with_clip()
    draft = Draft(seed=1, frames=17)
    inspector = InspectorView(draft, timeline, JobQueue())
    qtbot.addWidget(inspector)
    info = ModelInfo("7B", 848, 480, 16, 81, "cpu", "bfloat16", 1, frame_step=4)
    inspector.show_model(info)
    inspector.frames.stepBy(1)
    assert draft.frames == 21
    inspector.frames.lineEdit().selectAll()
    qtbot.keyClicks(inspector.frames, "20")
    inspector.frames.interpretText()
    inspector.frames.editingFinished.emit()
    assert inspector.frames.value() == 21 and draft.frames == 21
    inspector.show_model(replace(info, frame_step=1))
    inspector.frames.setValue(20)
    inspector.frames.editingFinished.emit()
    assert draft.frames == 20
    assert inspector.frames.stepType() == QAbstractSpinBox.StepType.DefaultStepType
