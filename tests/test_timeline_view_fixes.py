"""The timeline in the real window (issue 32, defects 9 and 14): an edit's placeholder sits where
its clip lands, the view follows the clip being made and an imported clip, Fit scrolls to the
start, Edit shows its mode, and right-click menus act on clips and the empty track."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QApplication

from app.commands import AddClip
from app.state.timeline import Clip, new_id
from app_utils import close_editor, open_editor
from engine.export import export_frames

PROMPT = "a large red circle moves right on a black background"
INSTRUCTION = "make the red circle blue"


@pytest.fixture
def editor(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    ed.window.resize(1280, 720)
    yield ed
    close_editor(ed)


def add_clips(studio, count: int, frames: int = 9) -> list[str]:
    """`count` clips of coloured noise on the timeline (as imported video), undoably."""
    t, rng = studio.timeline, np.random.default_rng(1)
    ids = []
    for i in range(count):
        pixels = rng.integers(0, 255, (frames, t.height, t.width, 3), dtype=np.uint8)
        media = t.add_media(pixels, "video", f"clip {i}")
        clip = Clip(new_id("c"), media.id, 0, frames, f"clip {i}")
        studio.undo.push(AddClip(t, clip, len(t.clips)))
        ids.append(clip.id)
    return ids


def in_view(view, left: float, right: float) -> bool:
    """Whether canvas x range [left, right) is inside the scroll area's viewport."""
    first = view.scroll.horizontalScrollBar().value()
    return first <= left and right <= first + view.scroll.viewport().width()


def test_an_edits_placeholder_sits_after_its_source_and_the_clip_lands_there(qtbot, editor):
    s, w = editor.studio, editor.window
    tv = w.timeline_view
    a, b = add_clips(s, 2)
    tv.fit()
    s.timeline.select(a)
    s.draft.set(prompt=INSTRUCTION)
    seen = {}

    def on_frame(_job_id, index, _image):
        if index == 2 and not seen:
            c = tv.canvas
            job = s.jobs.running()
            seen["b_left"] = c.clip_rect(s.timeline.clip(b)).left()
            seen["a_right"] = c.clip_rect(s.timeline.clip(a)).right()
            seen["ghost_end"] = c.x_of(s.timeline.clip(a).length + job.total)

    s.live_frame.connect(on_frame)
    with qtbot.waitSignal(s.job_landed, timeout=60_000) as landed:
        qtbot.mouseClick(w.inspector.edit_button, Qt.MouseButton.LeftButton)
    # while it ran, clip b made room for the placeholder right after a
    assert seen["b_left"] >= seen["ghost_end"] - 1
    new = landed.args[0]
    assert [c.id for c in s.timeline.clips] == [a, new, b]
    assert tv.canvas.clip_rect(s.timeline.clip(new)).left() == pytest.approx(seen["a_right"])


def test_edit_sets_the_mode_it_uses(qtbot, editor):
    s, w = editor.studio, editor.window
    (a,) = add_clips(s, 1)
    s.timeline.select(a)
    s.draft.set(mode="t2v", prompt=INSTRUCTION)
    assert w.inspector.mode.currentData() == "t2v"
    with qtbot.waitSignal(s.job_landed, timeout=60_000) as landed:
        qtbot.mouseClick(w.inspector.edit_button, Qt.MouseButton.LeftButton)
        # at once, before the edit lands (and selecting it shows its record): Mode says Edit
        assert s.draft.mode == "v2v" and w.inspector.mode.currentData() == "v2v"
        assert s.jobs.running().record.mode == "v2v"
    assert s.timeline.clip(landed.args[0]).request.mode == "v2v"


def test_the_view_follows_the_clip_being_made(qtbot, editor):
    s, w = editor.studio, editor.window
    tv = w.timeline_view
    ids = add_clips(s, 6)
    tv.canvas.set_zoom(40.0)
    QApplication.processEvents()
    bar = tv.scroll.horizontalScrollBar()
    bar.setValue(0)
    s.timeline.select(ids[-1])
    s.draft.set(prompt=INSTRUCTION)
    seen = []

    def look() -> None:
        if s.jobs.running() is not None:  # (not after the job ended)
            x = tv.canvas.x_of(s.timeline.duration)  # the placeholder after the last clip
            seen.append(in_view(tv, x, x + 40))

    s.live_frame.connect(lambda *_a: QTimer.singleShot(0, look))
    with qtbot.waitSignal(s.job_landed, timeout=60_000):
        s.edit()
    assert seen and all(seen[1:]), seen


def test_an_imported_clip_is_scrolled_into_view(qtbot, editor, tmp_path):
    s, w = editor.studio, editor.window
    tv = w.timeline_view
    add_clips(s, 6)
    tv.canvas.set_zoom(40.0)
    QApplication.processEvents()
    tv.scroll.horizontalScrollBar().setValue(0)
    path = tmp_path / "import.mp4"
    frames = np.random.default_rng(3).integers(0, 255, (8, 48, 64, 3), dtype=np.uint8)
    export_frames(frames, path, 16)
    s.import_video(path)
    qtbot.waitUntil(lambda: len(s.timeline.clips) == 7, timeout=10_000)
    new = s.timeline.clips[-1]
    rect = tv.canvas.clip_rect(new)
    qtbot.waitUntil(lambda: in_view(tv, rect.left(), rect.left() + 40), timeout=2000)


def test_fit_shows_the_whole_timeline_from_its_start(qtbot, editor):
    s, w = editor.studio, editor.window
    tv = w.timeline_view
    add_clips(s, 6)
    tv.canvas.set_zoom(40.0)
    QApplication.processEvents()
    bar = tv.scroll.horizontalScrollBar()
    bar.setValue(bar.maximum())
    assert bar.value() > 1000
    qtbot.mouseClick(tv.zoom_fit, Qt.MouseButton.LeftButton)
    QApplication.processEvents()
    assert bar.value() == 0
    end = tv.canvas.x_of(s.timeline.duration)
    assert in_view(tv, 0, end)


def right_click(tv, x: float):
    """Right-click the timeline track at canvas x; returns the menu shown."""
    canvas = tv.canvas
    from app.widgets.timeline_view import TRACK_H, TRACK_TOP

    pos = QPoint(int(x), TRACK_TOP + TRACK_H // 2)
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, canvas.mapToGlobal(pos))
    QApplication.sendEvent(canvas, event)
    return tv.menu


def texts(menu) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if a.text()]


def test_right_click_menus_on_clips_and_the_empty_track(qtbot, editor):
    s, w = editor.studio, editor.window
    tv = w.timeline_view
    a, b = add_clips(s, 2)
    tv.fit()
    s.timeline.select(None)
    menu = right_click(tv, tv.canvas.clip_rect(s.timeline.clip(b)).center().x())
    assert menu is not None and menu.isVisible()
    assert s.timeline.selected == b  # the clip right-clicked is the one acted on
    shown = texts(menu)
    for word in ("Regenerate", "Extend", "Edit", "Duplicate", "Delete", "Copy", "Export clip"):
        assert any(t.startswith(word) for t in shown), (word, shown)
    copy = next(x for x in menu.actions() if x.text().replace("&", "").startswith("Copy"))
    copy.trigger()
    menu.close()

    menu = right_click(tv, tv.canvas.x_of(s.timeline.duration) + 60)  # the empty track
    shown = texts(menu)
    assert any(t.startswith("Paste") for t in shown) and any("Import" in t for t in shown)
    paste = next(x for x in menu.actions() if x.text().replace("&", "").startswith("Paste"))
    assert paste.isEnabled()
    paste.trigger()
    menu.close()
    assert len(s.timeline.clips) == 3
    np.testing.assert_array_equal(
        s.timeline.clip_frames(s.timeline.clips[2].id), s.timeline.clip_frames(b)
    )
    s.undo.undo()
    assert len(s.timeline.clips) == 2

    menu = right_click(tv, tv.canvas.clip_rect(s.timeline.clip(a)).center().x())
    delete = next(x for x in menu.actions() if x.text().replace("&", "").startswith("Delete"))
    delete.trigger()
    menu.close()
    assert [c.id for c in s.timeline.clips] == [b]


def test_a_regenerated_take_streams_over_its_clip_and_the_clips_after_stay(qtbot, editor):
    s, w = editor.studio, editor.window
    tv = w.timeline_view
    s.draft.set(prompt=PROMPT, frames=5)
    with qtbot.waitSignal(s.job_landed, timeout=60_000) as landed:
        s.generate()
    a = landed.args[0]
    (b,) = add_clips(s, 1)
    tv.fit()
    c = tv.canvas
    b_left = c.clip_rect(s.timeline.clip(b)).left()
    seen = {}

    def on_frame(_job_id, index, _image):
        if index == 2 and not seen:
            seen["ghost"] = c.ghost_rect().left()
            seen["a_left"] = c.clip_rect(s.timeline.clip(a)).left()
            seen["b_left"] = c.clip_rect(s.timeline.clip(b)).left()

    s.live_frame.connect(on_frame)
    s.timeline.select(a)
    with qtbot.waitSignal(s.job_landed, timeout=60_000) as landed:
        qtbot.keyClick(w, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert seen["ghost"] == pytest.approx(seen["a_left"] + 2)  # over the clip it re-takes
    assert seen["b_left"] == pytest.approx(b_left)  # no room made: the take lands in place
    assert landed.args[0] == a and [x.id for x in s.timeline.clips] == [a, b]
    assert len(s.timeline.clip(a).all_takes()) == 2
