"""The editor, driven through its real main window with the built-in demo model (headless Qt)."""

from __future__ import annotations

import os
import shutil
import struct
import zlib

import av
import cv2
import numpy as np
import pytest
import torch
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.state.jobs import JobState
from app.state.project import load_project
from app.state.request import ClipRequest
from app_utils import (
    FAULT_SEED,
    FaultyPipeline,
    close_editor,
    demo_loader,
    open_editor,
    psnr,
    shown_frame,
)
from engine.api import GenerateRequest
from engine.demo.world import random_scene, render

PROMPT = "a large red circle moves right on a black background"


@pytest.fixture
def editor(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    yield ed
    close_editor(ed)


def type_prompt(qtbot, ed, text: str) -> None:
    box = ed.window.inspector.prompt
    box.clear()
    qtbot.keyClicks(box, text)


def run_job(qtbot, ed, start, timeout: int = 60_000) -> str:
    """Call `start` (which queues a job) and wait until it lands; returns the new clip id."""
    with qtbot.waitSignal(ed.studio.job_landed, timeout=timeout) as blocker:
        start()
    return blocker.args[0]


def drop_files(qtbot, widget, paths) -> None:
    """What the file manager does: drag enter, move, then drop local file URLs on `widget`."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = QPoint(widget.width() // 2, widget.height() // 2)
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(centre, *args)
    assert QApplication.sendEvent(widget, enter) and enter.isAccepted()
    QApplication.sendEvent(widget, QDragMoveEvent(centre, *args))
    drop = QDropEvent(QPointF(centre), *args)
    QApplication.sendEvent(widget, drop)
    assert drop.isAccepted()


def wait_idle(qtbot, ed, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: not ed.studio.busy, timeout=timeout)


def project_state(studio):
    t = studio.timeline
    return [(c.name, c.length, c.request) for c in t.clips], t.all_frames().copy()


# ---- generation ------------------------------------------------------------------------------------
def test_text_to_video_streams_frames_in_order_then_lands(qtbot, editor):
    s, w = editor.studio, editor.window
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(9)
    live, painted = [], {}

    def on_shown(src: str, i: int) -> None:
        live.append((src, i, len(s.timeline.clips)))
        painted[src, i] = shown_frame(w.preview.canvas)

    w.preview.frame_shown.connect(on_shown)
    clip_id = run_job(
        qtbot,
        editor,
        lambda: qtbot.mouseClick(w.inspector.generate_button, Qt.MouseButton.LeftButton),
    )

    # every frame was shown live, in order, before the clip existed on the timeline
    shown = [(i, n) for src, i, n in live if src == "live"]
    assert [i for i, _ in shown] == list(range(9))
    assert all(n == 0 for _, n in shown)
    clip = s.timeline.clip(clip_id)
    assert clip.length == 9 and clip.request.prompt == PROMPT and clip.request.mode == "t2v"
    # the clip holds exactly what the engine makes for that request
    expected = np.concatenate(
        [
            e.frames
            for e in demo_loader(None, "cpu", "auto").generate(
                GenerateRequest(
                    PROMPT, frames=9, seed=clip.request.seed, guidance=clip.request.guidance
                )
            )
        ]
    )
    np.testing.assert_array_equal(s.timeline.clip_frames(clip_id), expected)
    # the preview painted each frame as it came (below the LIVE label), then the playhead's frame
    for i in range(9):
        assert psnr(painted["live", i][16:], expected[i][16:]) > 30, i
    assert psnr(shown_frame(w.preview.canvas), s.timeline.frame(s.timeline.playhead)) > 30
    assert "cpu" in w.status.device.text()


def test_live_frames_fill_the_clip_strip_and_show_fps(qtbot, editor):
    from app.widgets.timeline_view import THUMB_H, TRACK_TOP

    s, w = editor.studio, editor.window
    type_prompt(qtbot, editor, "a large red circle moves right on a white background")
    w.inspector.frames.setValue(5)
    s.timeline.select(run_job(qtbot, editor, s.generate))  # a selected clip before the new one
    w.inspector.frames.setValue(64)
    seen = {}

    def on_frame(job_id, index, _image):
        if index == 12 and not seen:
            canvas = w.timeline_view.canvas
            canvas.repaint()
            seen["strip"] = canvas.grab().toImage()
            seen["x0"] = canvas.x_of(s.timeline.duration)
            seen["ppf"] = canvas.ppf
            seen["bar"] = w.job_queue.progress_of(job_id)[2]
            seen["counter"] = w.preview.counter.text()
            s.cancel()

    s.live_frame.connect(on_frame)
    run_job(qtbot, editor, s.generate)
    img, x0, ppf = seen["strip"], seen["x0"], seen["ppf"]

    def lightness(x: float) -> float:
        """Median lightness down the strip's column at x: the thumbnail's background, whatever
        the sampled object covers."""
        rows = range(TRACK_TOP + 2, TRACK_TOP + THUMB_H - 2)
        return float(np.median([img.pixelColor(int(x), y).lightness() for y in rows]))

    assert lightness(x0 + 4 * ppf) > 200  # a thumbnail of a frame already made: white
    assert lightness(x0 + 50 * ppf) < 100  # frames to come: the dark placeholder
    assert " s" in seen["bar"] and "/64" in seen["bar"]  # frames done, time left
    assert "generating: frame 12 of 0–63" in seen["counter"] and "fps" in seen["counter"]


def test_ctrl_enter_generates_and_regenerate_uses_another_seed(qtbot, editor):
    s, w = editor.studio, editor.window
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(5)
    first = run_job(
        qtbot,
        editor,
        lambda: qtbot.keyClick(w, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier),
    )
    s.timeline.select(first)
    second = run_job(
        qtbot,
        editor,
        lambda: qtbot.mouseClick(w.inspector.regenerate_button, Qt.MouseButton.LeftButton),
    )
    assert second == first and [c.id for c in s.timeline.clips] == [first]  # a take of the clip
    clip = s.timeline.clip(first)
    a, b = clip.all_takes()
    assert clip.take_index == 1 and clip.request == b.request  # the new take is shown
    assert b.request.prompt == a.request.prompt and b.request.seed != a.request.seed
    before = s.timeline.media[a.media].frames[a.start : a.stop]
    assert not np.array_equal(s.timeline.clip_frames(first), before)
    s.undo.undo()  # undo takes it back
    assert s.timeline.clip(first).all_takes() == (a,)


def test_temperature_is_chosen_in_the_inspector_and_kept_with_the_clip(qtbot, editor, tmp_path):
    s, w = editor.studio, editor.window
    spin = w.inspector.temperature
    assert spin.value() == 0.0 and s.draft.temperature is None  # the model's own default
    assert spin.text() == f"Model default ({s.info.temperature:g})" == "Model default (0.5)"
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(5)
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "0.2")
    qtbot.keyClick(spin, Qt.Key.Key_Tab)
    assert s.draft.temperature == 0.2
    cool = run_job(qtbot, editor, s.generate)
    clip = s.timeline.clip(cool)
    assert clip.request.temperature == 0.2

    def engine_frames(temperature):
        request = GenerateRequest(PROMPT, frames=5, seed=clip.request.seed, temperature=temperature)
        return np.concatenate(
            [e.frames for e in demo_loader(None, "cpu", "auto").generate(request)]
        )

    np.testing.assert_array_equal(s.timeline.clip_frames(cool), engine_frames(0.2))
    assert not np.array_equal(engine_frames(0.2), engine_frames(None))

    spin.setValue(0.0)  # back to the model's default
    assert s.draft.temperature is None
    s.timeline.select(None)
    s.timeline.select(cool)  # selecting the clip shows its request again, temperature too
    assert s.draft.temperature == 0.2 and spin.value() == 0.2
    assert "temperature 0.2" in w.inspector.subheading.text()
    again = s.timeline.clip(run_job(qtbot, editor, s.regenerate))
    assert again.request.temperature == 0.2 and again.request.seed != clip.request.seed

    folder = tmp_path / "warm"
    s.save_as(folder)
    wait_idle(qtbot, editor)
    timeline, doc = load_project(folder)
    assert [t.request.temperature for t in timeline.clips[0].all_takes()] == [0.2, 0.2]
    out = tmp_path / "cool.mp4"
    with qtbot.waitSignal(s.export_done, timeout=30_000):
        s.export_video(out)
    with av.open(str(out)) as f:
        assert f.metadata.get("temperature") == "0.2"


def test_projects_without_a_temperature_load_with_the_model_default():
    """Projects saved before requests had a temperature still open; bad values are refused."""
    old = {"mode": "t2v", "prompt": PROMPT, "seed": 3, "guidance": 2.5, "frames": 9, "model": "x"}
    request = ClipRequest.from_dict(old)
    assert request.temperature is None
    assert ClipRequest.from_dict(request.to_dict()) == request
    warm = ClipRequest.from_dict({**old, "temperature": 0.7})
    assert warm.temperature == 0.7 and warm.to_dict()["temperature"] == 0.7
    for bad in (0, -1, "nan"):
        with pytest.raises(ValueError, match="temperature"):
            ClipRequest.from_dict({**old, "temperature": bad})


def test_inspector_fits_its_dock_and_scrolls_on_a_short_window(qtbot, editor):
    """The inspector's form takes the height it needs at the first start; on a short window the
    form scrolls while Generate and the other buttons stay in view."""
    w = editor.window
    inspector = w.inspector
    bar = inspector.scroll.verticalScrollBar()

    def buttons_in_view() -> bool:
        return all(
            b.isVisible()
            and 0 <= b.mapTo(inspector, b.rect().bottomLeft()).y() < inspector.height()
            for b in (inspector.generate_button, inspector.cancel_button)
        )

    editor.studio.draft.set(mode="i2v")  # the tallest form: start image and its button
    w.resize(1500, 920)
    docks = [w.inspector_dock, w.jobs_dock]
    w.resizeDocks(docks, [250, 450], Qt.Orientation.Vertical)  # a split too short for the form
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    assert buttons_in_view()
    w.fit_inspector()  # what the first start does: the inspector takes what it needs
    qtbot.waitUntil(lambda: bar.maximum() == 0)
    assert buttons_in_view()
    w.resize(960, 640)  # the smallest window: the form still fits (the column runs full height)
    qtbot.waitUntil(lambda: bar.maximum() == 0)
    w.resizeDocks(docks, [200, 400], Qt.Orientation.Vertical)  # the user gives Jobs the room
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    assert buttons_in_view()


def write_png(path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1]))


def test_dropped_image_becomes_the_first_frame(qtbot, editor, tmp_path):
    s, w = editor.studio, editor.window
    frame = render(random_scene(np.random.default_rng(3)), 1)[0]
    big = cv2.resize(frame, (256, 192), interpolation=cv2.INTER_NEAREST)  # 4x: fits back exactly
    path = tmp_path / "start.png"
    write_png(path, big)
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(5)
    drop_files(qtbot, w.timeline_view, [path])  # the drop sets the start image; nothing runs
    qtbot.waitUntil(lambda: s.draft.image is not None and s.draft.mode == "i2v")
    assert not s.jobs.running()
    button = w.inspector.generate_button
    clip_id = run_job(qtbot, editor, lambda: qtbot.mouseClick(button, Qt.MouseButton.LeftButton))
    clip = s.timeline.clip(clip_id)
    assert clip.request.mode == "i2v" and clip.length == 5
    first = s.timeline.clip_frames(clip_id)[0]
    assert psnr(first, frame) > 30
    assert w.inspector.source_label.text() != "none"


def test_edit_and_extend_make_new_clips_and_keep_the_source(qtbot, editor):
    s, w = editor.studio, editor.window
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(9)
    source = run_job(qtbot, editor, s.generate)
    before = s.timeline.clip_frames(source).copy()

    s.timeline.select(source)
    type_prompt(qtbot, editor, "make the red circle blue")
    edited = run_job(
        qtbot, editor, lambda: qtbot.mouseClick(w.inspector.edit_button, Qt.MouseButton.LeftButton)
    )
    e = s.timeline.clip(edited)
    assert e.request.mode == "v2v" and e.length == 9
    assert e.request.source.media == s.timeline.clip(source).media

    s.timeline.select(source)
    w.inspector.frames.setValue(12)
    extended = run_job(
        qtbot,
        editor,
        lambda: qtbot.mouseClick(w.inspector.extend_button, Qt.MouseButton.LeftButton),
    )
    x = s.timeline.clip(extended)
    assert x.request.mode == "extend" and x.length == 12
    assert [c.id for c in s.timeline.clips] == [
        source,
        extended,
        edited,
    ]  # each lands after its source
    np.testing.assert_array_equal(s.timeline.clip_frames(source), before)  # the original stays


def test_cancel_mid_job_keeps_the_frames_made(qtbot, editor):
    s, w = editor.studio, editor.window
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(64)
    seen = []

    def on_frame(job_id, index, _image):
        seen.append(index)
        if index == 2:
            qtbot.keyClick(w, Qt.Key.Key_Escape)

    s.live_frame.connect(on_frame)
    jobs = []
    clip_id = run_job(qtbot, editor, lambda: jobs.append(s.generate()))
    assert jobs[0].state == JobState.CANCELLED
    clip = s.timeline.clip(clip_id)
    assert 3 <= clip.length < 64 and clip.length <= 3 + 4  # stopped within one latent frame
    assert "partial" in clip.name
    np.testing.assert_array_equal(s.timeline.clip_frames(clip_id).shape[0], len(seen))


def test_queue_reorders_and_removes_jobs(qtbot, editor):
    s = editor.studio
    type_prompt(qtbot, editor, PROMPT)
    editor.window.inspector.frames.setValue(33)
    running = s.generate()
    a, b, c = (s.submit(ClipRequest("t2v", PROMPT, seed, 2.5, 5)) for seed in (1, 2, 3))
    s.move_job(c.id, -1)
    s.remove_job(a.id)
    assert [j.id for j in s.jobs.queued()] == [c.id, b.id]
    order = []
    s.job_landed.connect(lambda cid: order.append(s.timeline.clip(cid).request.seed))
    qtbot.waitUntil(lambda: running.done > 0, timeout=60_000)  # a partial clip to keep
    s.cancel()
    qtbot.waitUntil(lambda: len(order) == 3, timeout=60_000)
    assert order == [running.request.seed, 3, 2]


# ---- timeline editing -------------------------------------------------------------------------------
def test_timeline_edits_undo_and_redo(qtbot, editor):
    s, w = editor.studio, editor.window
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(9)
    a = run_job(qtbot, editor, s.generate)
    original = project_state(s)

    s.timeline.select(a)
    qtbot.keyClick(w, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)  # duplicate
    assert len(s.timeline.clips) == 2
    s.seek(4)
    qtbot.keyClick(w, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)  # split at the playhead
    assert [c.length for c in s.timeline.clips] == [4, 5, 9]
    s.timeline.select(s.timeline.clips[0].id)
    qtbot.keyClick(w, Qt.Key.Key_Delete)
    assert [c.length for c in s.timeline.clips] == [5, 9]
    s.trim(s.timeline.clips[1].id, 2, 7)
    order = [c.id for c in s.timeline.clips]
    trimmed = s.timeline.clip_frames(order[1]).copy()
    s.move_clip(order[1], 0)  # the trimmed copy goes first: the timeline starts with its frames
    assert [c.id for c in s.timeline.clips] == order[::-1]
    np.testing.assert_array_equal(s.timeline.all_frames()[:5], trimmed)
    s.undo.undo()
    assert [c.id for c in s.timeline.clips] == order
    s.undo.redo()
    assert [c.id for c in s.timeline.clips] == order[::-1]
    assert [c.length for c in s.timeline.clips] == [5, 5]
    after_edits = project_state(s)

    for _ in range(5):
        qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    names, frames = project_state(s)
    assert names == original[0]
    np.testing.assert_array_equal(frames, original[1])
    for _ in range(5):
        qtbot.keyClick(
            w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        )
    names, frames = project_state(s)
    assert names == after_edits[0]
    np.testing.assert_array_equal(frames, after_edits[1])


def test_rename_clip_with_f2_is_undoable_and_saved(qtbot, editor, tmp_path):
    s, w = editor.studio, editor.window
    answers = s.dialogs.answers
    s.timeline.select(None)
    s.rename_selected("x")
    assert "Select a clip to rename" in s.messages.errors()[-1].text
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(3)
    clip_id = run_job(qtbot, editor, s.generate)
    s.timeline.select(clip_id)
    old = s.timeline.clip(clip_id).name
    answers["clip_name"] = "  Opening\tshot \n"
    w.activateWindow()
    qtbot.keyClick(w, Qt.Key.Key_F2)
    assert s.timeline.clip(clip_id).name == "Opening shot" == w.inspector.heading.text()
    s.undo.undo()
    assert s.timeline.clip(clip_id).name == old
    s.undo.redo()
    assert s.timeline.clip(clip_id).name == "Opening shot"
    errors = len(s.messages.errors())
    answers["clip_name"] = None  # the dialog was cancelled: nothing changes, nothing to say
    w.actions_.rename.trigger()
    assert s.timeline.clip(clip_id).name == "Opening shot" and len(s.messages.errors()) == errors
    for bad, words in (("   ", "cannot be empty"), ("x" * 201, "at most 200")):
        s.rename_selected(bad)
        assert words in s.messages.errors()[-1].text
    assert s.timeline.clip(clip_id).name == "Opening shot"
    s.save_as(tmp_path / "named")
    wait_idle(qtbot, editor)
    assert load_project(tmp_path / "named")[0].clips[0].name == "Opening shot"


def test_playback_keys(qtbot, editor):
    s, w = editor.studio, editor.window
    type_prompt(qtbot, editor, PROMPT)
    w.inspector.frames.setValue(9)
    run_job(qtbot, editor, s.generate)
    s.seek(0)
    qtbot.keyClick(w, Qt.Key.Key_Right)
    qtbot.keyClick(w, Qt.Key.Key_Right)
    assert s.timeline.playhead == 2
    qtbot.keyClick(w, Qt.Key.Key_Left)
    assert s.timeline.playhead == 1
    assert "frame 1 of 0–8" in w.preview.counter.text()
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert w.preview.playing
    qtbot.waitUntil(lambda: s.timeline.playhead >= 4, timeout=5_000)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert not w.preview.playing


# ---- projects and export -----------------------------------------------------------------------------
def test_save_reload_and_export(qtbot, editor, tmp_path):
    s = editor.studio
    type_prompt(qtbot, editor, PROMPT)
    editor.window.inspector.frames.setValue(9)
    run_job(qtbot, editor, s.generate)
    s.timeline.select(s.timeline.clips[0].id)
    s.duplicate_selected()
    s.trim(s.timeline.clips[1].id, 3, 8)
    saved = project_state(s)

    folder = tmp_path / "My project"
    s.save_as(folder)
    wait_idle(qtbot, editor)
    assert not s.dirty and s.project_path == folder
    timeline, _ = load_project(folder)
    assert [(c.name, c.length, c.request) for c in timeline.clips] == saved[0]
    np.testing.assert_array_equal(timeline.all_frames(), saved[1])

    s.new_project()
    assert not s.timeline.clips
    s.open_project(folder)
    qtbot.waitUntil(lambda: len(s.timeline.clips) == 2, timeout=10_000)
    names, frames = project_state(s)
    assert names == saved[0]
    np.testing.assert_array_equal(frames, saved[1])

    out = tmp_path / "export.mp4"
    with qtbot.waitSignal(s.export_done, timeout=30_000):
        s.export_video(out)
    with av.open(str(out)) as f:
        meta = dict(f.metadata)
        decoded = np.stack([fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)])
    assert decoded.shape == (14, 48, 64, 3)
    assert PROMPT in meta.get("prompt", "") and "Shapes" in meta.get("model", "")
    assert psnr(decoded, saved[1]) > 25
    assert not list(tmp_path.glob("*.part"))

    s.seek(2)
    png = tmp_path / "frame.png"
    with qtbot.waitSignal(s.export_done, timeout=10_000):
        s.export_frame(png)
    np.testing.assert_array_equal(cv2.imread(str(png))[:, :, ::-1], saved[1][2])


@pytest.mark.parametrize("kind", ["mp4", "gif"])
def test_imported_video_can_be_extended(qtbot, editor, tmp_path, kind):
    s = editor.studio
    scene = random_scene(np.random.default_rng(5))
    frames = render(scene, 12)
    path = tmp_path / f"clip.{kind}"
    with av.open(str(path), "w") as f:
        if kind == "mp4":
            st = f.add_stream("libx264", rate=16)
            st.width, st.height, st.pix_fmt = 64, 48, "yuv444p"
            st.options = {"crf": "0"}
        else:
            st = f.add_stream("gif", rate=16)
            st.width, st.height, st.pix_fmt = 64, 48, "rgb8"  # a 3-3-2 palette: lossy
        for fr in frames:
            for p in st.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")):
                f.mux(p)
        for p in st.encode():
            f.mux(p)
    drop_files(qtbot, editor.window.preview.canvas, [path])
    qtbot.waitUntil(lambda: len(s.timeline.clips) == 1, timeout=10_000)
    clip = s.timeline.clips[0]
    assert clip.request is None and clip.length == 12
    assert psnr(s.timeline.clip_frames(clip.id), frames) > (30 if kind == "mp4" else 12)
    s.timeline.select(clip.id)
    type_prompt(qtbot, editor, PROMPT)
    editor.window.inspector.frames.setValue(8)
    new = run_job(qtbot, editor, s.extend)
    assert s.timeline.clip(new).length == 8 and s.timeline.clip(new).request.mode == "extend"


# ---- bad input and faults ---------------------------------------------------------------------------
def huge_png_header(path) -> None:
    """A PNG whose header claims 20000 x 20000 pixels (decoding it would need 1.2 GB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_bad_files_give_clear_errors_and_change_nothing(qtbot, editor, tmp_path):
    s = editor.studio
    type_prompt(qtbot, editor, PROMPT)
    editor.window.inspector.frames.setValue(5)
    run_job(qtbot, editor, s.generate)
    before = project_state(s)
    undo_index = s.undo.index()

    good = tmp_path / "good.png"
    write_png(good, np.zeros((48, 64, 3), np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
    huge = tmp_path / "huge.png"
    huge_png_header(huge)
    notes = tmp_path / "notes.txt"
    notes.write_text("not media")
    broken_video = tmp_path / "broken.mp4"
    broken_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    empty_video = tmp_path / "empty.webm"
    empty_video.write_bytes(b"")

    cases = [
        (truncated, "truncated.png"),
        (corrupt, "corrupt.jpg"),
        (huge, "too large"),
        (notes, "unsupported"),
        (broken_video, "broken.mp4"),
        (empty_video, "empty.webm"),
    ]
    for path, words in cases:
        n = len(s.messages.errors())
        drop_files(qtbot, editor.window.timeline_view, [path])
        wait_idle(qtbot, editor)
        qtbot.waitUntil(lambda n=n: len(s.messages.errors()) > n, timeout=10_000)
        assert words in s.messages.errors()[-1].text, s.messages.errors()[-1].text
        assert words in " ".join(editor.window.message_area.texts())
    names, frames = project_state(s)
    assert names == before[0] and s.undo.index() == undo_index
    np.testing.assert_array_equal(frames, before[1])
    assert s.draft.image is None  # no bad image became the start image

    bad_project = tmp_path / "bad project"
    bad_project.mkdir()
    (bad_project / "project.json").write_text("{ not json")
    s.open_project(bad_project)
    wait_idle(qtbot, editor)
    assert "Cannot open the project" in s.messages.errors()[-1].text
    blocked = tmp_path / "a file"
    blocked.write_text("")
    s.export_video(blocked / "out.mp4")  # the parent is a file: the write fails
    wait_idle(qtbot, editor)
    assert "Export failed" in s.messages.errors()[-1].text
    s.save_as(blocked / "project")
    wait_idle(qtbot, editor)
    assert "Project not saved" in s.messages.errors()[-1].text and s.dirty
    names, frames = project_state(s)
    assert names == before[0]
    np.testing.assert_array_equal(frames, before[1])


def test_damaged_model_file_keeps_the_editor_usable(qtbot, editor, tmp_path):
    s = editor.studio
    damaged = tmp_path / "model.safetensors"
    damaged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    failures = []
    s.model_failed.connect(failures.append)
    with qtbot.waitSignal(s.model_loaded, timeout=30_000):  # after the failure, the fallback
        s.load_model(str(damaged))
    (message,) = failures
    assert "model.safetensors" in message or "safetensors" in message
    assert "Model not loaded" in s.messages.errors()[-1].text
    assert "previous model stays in use" in s.messages.errors()[-1].text
    assert s.settings.model == "" and s.info.name.startswith("Shapes")  # back on the demo model
    type_prompt(qtbot, editor, PROMPT)
    editor.window.inspector.frames.setValue(5)
    assert s.timeline.clip(run_job(qtbot, editor, s.generate)).length == 5


def test_a_precision_the_cpu_emulates_is_named_in_the_messages(qtbot, tmp_path, monkeypatch):
    """Choosing bf16 on a CPU that emulates it (~90x slower on an AVX2-only EPYC) loads the model
    and warns, naming the fast choice; the limit is moved so this CPU's bf16 counts as slow."""
    import engine.device as device_module
    from engine.registry import load_pipeline as load_any

    monkeypatch.setattr(device_module, "SLOW_PRECISION", 0.0)
    loader = lambda m, d, p: load_any(m or None, d, p)  # noqa: E731
    ed = open_editor(qtbot, tmp_path, loader=loader)
    try:
        s = ed.studio
        assert s.info.dtype == "float32" and s.messages.latest("warning") is None  # auto: fp32
        with qtbot.waitSignal(s.model_loaded, timeout=60_000):
            ed.window.actions_.precisions["bf16"].trigger()
        assert s.info.dtype == "bfloat16" and s.settings.precision == "bf16"
        warning = s.messages.latest("warning").text
        assert warning.startswith("bf16 matrix products take") and "fp32" in warning
    finally:
        close_editor(ed)


def test_a_bad_model_in_the_settings_falls_back_to_the_demo_model(qtbot, tmp_path):
    from app_utils import isolated_settings

    settings = isolated_settings(tmp_path)
    settings.model = str(tmp_path / "missing.safetensors")
    settings.sync()
    ed = open_editor(qtbot, tmp_path)
    try:
        assert ed.studio.info.name.startswith("Shapes") and ed.studio.settings.model == ""
        assert "missing.safetensors" in ed.studio.messages.errors()[-1].text
    finally:
        close_editor(ed)


@pytest.mark.parametrize(
    "error, words",
    [
        (RuntimeError("kernel exploded"), "engine error: RuntimeError: kernel exploded"),
        (torch.cuda.OutOfMemoryError("CUDA out of memory"), "out of memory"),
    ],
)
def test_engine_failure_mid_job_keeps_frames_and_the_thread(qtbot, tmp_path, error, words):
    loader = lambda m, d, p: FaultyPipeline(demo_loader(m, d, p), error, after=3)  # noqa: E731
    ed = open_editor(qtbot, tmp_path, loader=loader)
    try:
        s = ed.studio
        type_prompt(qtbot, ed, PROMPT)
        ed.window.inspector.seed.setValue(FAULT_SEED)
        ed.window.inspector.frames.setValue(17)
        jobs = []
        clip_id = run_job(qtbot, ed, lambda: jobs.append(s.generate()))
        assert jobs[0].state == JobState.FAILED and words in jobs[0].message
        assert words in s.messages.errors()[-1].text
        assert 3 <= s.timeline.clip(clip_id).length < 17  # the frames made are kept
        ed.window.inspector.seed.setValue(1)
        ok = run_job(qtbot, ed, lambda: jobs.append(s.generate()))  # the thread takes the next job
        assert s.timeline.clip(ok).length == 17 and jobs[1].state == JobState.DONE
    finally:
        close_editor(ed)


def test_unsaved_clips_are_never_dropped_without_asking(qtbot, tmp_path):
    """New project, Open project and closing the window ask first when clips are unsaved:
    Cancel keeps everything, Save writes the project first, Discard drops the changes."""
    ed = open_editor(qtbot, tmp_path)
    s, answers = ed.studio, ed.studio.dialogs.answers
    try:
        type_prompt(qtbot, ed, PROMPT)
        ed.window.inspector.frames.setValue(4)
        run_job(qtbot, ed, s.generate)
        folder = tmp_path / "first"
        s.save_as(folder)
        wait_idle(qtbot, ed)
        run_job(qtbot, ed, s.generate)  # a second clip, not saved yet
        assert s.dirty and len(s.timeline.clips) == 2

        answers["confirm_close"] = "cancel"
        s.new_project()
        s.open_project(folder)
        wait_idle(qtbot, ed)
        ed.window.close()
        assert s.dialogs.asked.count("confirm_close") == 3
        assert len(s.timeline.clips) == 2 and s.dirty and ed.window.isVisible()

        answers["confirm_close"] = "save"  # saved to its folder, then the new project
        s.new_project()
        assert not s.timeline.clips and s.project_path is None
        assert len(load_project(folder)[0].clips) == 2

        run_job(qtbot, ed, s.generate)  # untitled; the save dialog is cancelled: nothing happens
        s.new_project()
        assert len(s.timeline.clips) == 1 and s.dirty and "save_project" in s.dialogs.asked

        answers["confirm_close"] = "discard"
        s.open_project(folder)
        qtbot.waitUntil(lambda: s.project_path == folder, timeout=10_000)
        assert len(s.timeline.clips) == 2 and not s.dirty
        asked = s.dialogs.asked.count("confirm_close")
        s.new_project()  # nothing unsaved: no question
        assert s.dialogs.asked.count("confirm_close") == asked and not s.timeline.clips
    finally:
        close_editor(ed)


def test_closing_or_new_project_while_generating_asks_and_keeps_the_frames_made(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path, ask=False, confirm_close="cancel")
    s, w, answers = ed.studio, ed.window, ed.studio.dialogs.answers
    try:
        type_prompt(qtbot, ed, PROMPT)
        w.inspector.frames.setValue(400)
        s.generate()
        w.inspector.frames.setValue(5)
        s.generate()  # waits behind the first
        job = s.jobs.running()
        qtbot.waitUntil(lambda: job.received >= 3, timeout=30_000)
        w.close()  # "keep working": nothing stops
        assert s.dialogs.asked[-1] == "Jobs are running" and w.isVisible()
        s.new_project()  # the jobs would land in the new project: asked too, nothing stops
        assert s.dialogs.asked.count("Jobs are running") == 2 and not s.timeline.clips
        assert job.state.value == "running" and len(s.jobs.queued()) == 1
        answers["ask"] = True  # stop and quit: the frames made land as a clip, then save?
        w.close()
        assert job.state.value == "cancelled" and not s.jobs.queued() and not s.jobs.running()
        [clip] = s.timeline.clips
        assert "partial" in clip.name and 3 <= clip.length < 400
        assert s.dialogs.asked[-1] == "confirm_close" and w.isVisible()  # cancelled there
    finally:
        close_editor(ed)


def test_open_recent_lists_saved_projects_and_forgets_missing_ones(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    s, w = ed.studio, ed.window

    def entries():
        w.fill_recent_menu()
        return [(a.text(), a.isEnabled()) for a in w.recent_menu.actions() if not a.isSeparator()]

    def trigger(name):
        w.fill_recent_menu()
        [action] = [a for a in w.recent_menu.actions() if a.text().endswith(f" {name}")]
        action.trigger()

    try:
        assert entries() == [("No recent projects", False), ("Clear recent projects", False)]
        type_prompt(qtbot, ed, PROMPT)
        ed.window.inspector.frames.setValue(3)
        run_job(qtbot, ed, s.generate)
        for name in ("a", "b", "R&D"):
            s.save_as(tmp_path / name)
            wait_idle(qtbot, ed)
        assert entries() == [
            ("&1 R&&D", True),  # shown as "1 R&D", not as a shortcut letter
            ("&2 b", True),
            ("&3 a", True),
            ("Clear recent projects", True),
        ]
        s.new_project()
        trigger("a")
        qtbot.waitUntil(lambda: s.project_path == tmp_path / "a", timeout=10_000)
        assert len(s.timeline.clips) == 1 and [t for t, _ in entries()][:2] == ["&1 a", "&2 R&&D"]
        shutil.rmtree(tmp_path / "b")  # moved away: opening it fails and it leaves the list
        trigger("b")
        qtbot.waitUntil(lambda: bool(s.messages.errors()), timeout=10_000)
        assert "Cannot open the project" in s.messages.errors()[-1].text
        assert s.project_path == tmp_path / "a"
        assert s.settings.recent_projects == [tmp_path / "a", tmp_path / "R&D"]
    finally:
        close_editor(ed)
    again = open_editor(qtbot, tmp_path)  # the list is a preference: it persists
    try:
        assert again.studio.settings.recent_projects == [tmp_path / "a", tmp_path / "R&D"]
        again.window.fill_recent_menu()
        again.window.recent_menu.actions()[-1].trigger()  # Clear recent projects
        assert again.studio.settings.recent_projects == []
    finally:
        close_editor(again)


def test_a_folder_given_at_start_opens_its_project_or_becomes_a_new_one(qtbot, tmp_path):
    new = tmp_path / "films" / "first"  # `starflow-studio films/first`, not made yet
    ed = open_editor(qtbot, tmp_path, project=new)
    s = ed.studio
    try:
        assert s.project_path == new and not new.exists() and not s.messages.errors()
        assert ed.window.windowTitle().startswith("first") and not s.timeline.clips
        type_prompt(qtbot, ed, PROMPT)
        ed.window.inspector.frames.setValue(3)
        run_job(qtbot, ed, s.generate)
        s.save()  # writes to the folder given, no dialog
        wait_idle(qtbot, ed)
        assert "save_project" not in s.dialogs.asked and not s.dirty
        timeline, _ = load_project(new)
        assert [c.stop - c.start for c in timeline.clips] == [3]
    finally:
        close_editor(ed)
    again = open_editor(qtbot, tmp_path, project=new)  # now it is a project: it opens
    try:
        qtbot.waitUntil(lambda: len(again.studio.timeline.clips) == 1, timeout=10_000)
        assert again.studio.project_path == new and not again.studio.messages.errors()
    finally:
        close_editor(again)
    other = tmp_path / "notes"  # a folder with other things in it is not taken over
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    ed = open_editor(qtbot, tmp_path, project=other)
    try:
        qtbot.waitUntil(lambda: bool(ed.studio.messages.errors()), timeout=10_000)
        assert "not a STARFlow Studio project" in ed.studio.messages.errors()[-1].text
        assert ed.studio.project_path is None
        assert os.listdir(other) == ["todo.txt"]
    finally:
        close_editor(ed)


def test_crash_recovery_offers_the_autosave(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    type_prompt(qtbot, ed, PROMPT)
    ed.window.inspector.frames.setValue(5)
    run_job(qtbot, ed, ed.studio.generate)  # autosaves after the job
    wait_idle(qtbot, ed)
    lost = project_state(ed.studio)
    close_editor(ed, clean=False)  # as a crash: the autosave stays

    again = open_editor(qtbot, tmp_path, ask=True)
    try:
        assert "Recover unsaved work?" in again.studio.dialogs.asked
        names, frames = project_state(again.studio)
        assert names == lost[0]
        np.testing.assert_array_equal(frames, lost[1])
        assert again.studio.dirty
    finally:
        close_editor(again)
    third = open_editor(qtbot, tmp_path, ask=True)  # a clean exit leaves nothing to recover
    try:
        assert "Recover unsaved work?" not in third.studio.dialogs.asked
    finally:
        close_editor(third)


def test_preferences_persist_between_sessions(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    w = ed.window
    type_prompt(qtbot, ed, PROMPT)
    w.inspector.seed.setValue(42)
    w.inspector.guidance.setValue(4.0)
    w.inspector.frames.setValue(6)
    w.inspector.temperature.setValue(0.35)
    run_job(qtbot, ed, ed.studio.generate)
    w.timeline_dock.hide()
    close_editor(ed)

    again = open_editor(qtbot, tmp_path)
    try:
        d = again.studio.draft
        assert (d.seed, d.guidance, d.frames, d.temperature) == (42, 4.0, 6, 0.35)
        assert again.window.inspector.seed.value() == 42
        assert again.window.inspector.temperature.value() == 0.35
        assert again.window.timeline_dock.isHidden()  # the window layout came back
        assert again.studio.settings.window_state()[0] is not None
    finally:
        close_editor(again)
