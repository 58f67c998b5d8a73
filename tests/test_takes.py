"""Variations (issue 32): N takes of one request with seeds in a row land as takes of one clip;
the timeline's menu chooses the take shown (undoable); two takes compare side by side."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QApplication

from app.state.request import ClipRequest
from app.state.timeline import Clip, Take, Timeline, new_id
from app_utils import close_editor, demo_loader, open_editor
from engine.api import GenerateRequest

PROMPT = "a large red circle moves right on a black background"


def test_a_clip_keeps_its_takes_and_shows_one():
    t = Timeline(64, 48, 16.0)
    media = [t.add_media(np.full((4, 48, 64, 3), k, np.uint8), "generated") for k in range(3)]
    records = [ClipRequest("t2v", PROMPT, seed=5 + k, frames=4) for k in range(3)]
    clip = Clip(new_id("c"), media[0].id, 0, 4, "made", records[0], job=7)
    t.insert(0, clip)
    for k in (1, 2):
        clip = clip.with_new_take(Take(media[k].id, 0, 4, records[k], 7 + k), active=k == 2)
    t.replace(clip)
    assert [tk.request.seed for tk in clip.all_takes()] == [5, 6, 7]
    assert clip.take_index == 2 and t.clip_frames(clip.id)[0, 0, 0, 0] == 2
    trimmed = t.trimmed(clip.id, 1, 3)
    first = trimmed.with_take(0)
    assert (first.start, first.stop, first.request.seed, first.job) == (0, 4, 5, 7)
    assert first.with_take(2).stop == 3  # the trimmed take keeps its trim
    again = Clip.from_dict(first.to_dict())
    assert again == first and again.to_dict()["takes"][2]["job"] == 9
    assert t.snapshot().referenced_media() == [m.id for m in media]
    assert t.last_job() == 9
    with pytest.raises(ValueError, match="none of its takes"):
        Clip.from_dict({**first.to_dict(), "media": "m-other"})


def right_click(tv, clip):
    from app.widgets.timeline_view import TRACK_H, TRACK_TOP

    x = tv.canvas.clip_rect(clip).center().x()
    pos = QPoint(int(x), TRACK_TOP + TRACK_H // 2)
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, tv.canvas.mapToGlobal(pos))
    QApplication.sendEvent(tv.canvas, event)
    return tv.menu


def action(menu, start: str):
    for a in menu.actions():
        if a.menu() is not None:
            found = action(a.menu(), start)
            if found is not None:
                return found
        if a.text().replace("&", "").startswith(start):
            return a
    return None


def test_takes_queue_seeds_in_a_row_and_land_on_one_clip(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    s, w = ed.studio, ed.window
    s.draft.set(prompt=PROMPT, frames=4, seed=40)
    landed = []
    s.job_landed.connect(landed.append)
    first = s.generate(takes=3)
    jobs = [j for j in s.jobs.jobs]
    assert [j.record.seed for j in jobs] == [40, 41, 42] and jobs[0] is first
    assert [j.number for j in jobs] == [1, 2, 3]
    qtbot.waitUntil(lambda: len(landed) == 3, timeout=60_000)
    assert len(s.timeline.clips) == 1 and len(set(landed)) == 1
    clip = s.timeline.clips[0]
    takes = clip.all_takes()
    assert [tk.request.seed for tk in takes] == [40, 41, 42] and clip.take_index == 2
    pipe = demo_loader(None, "cpu", "auto")
    for tk in takes:  # each take is what the engine makes for its seed
        made = np.concatenate(
            [
                e.frames
                for e in pipe.generate(GenerateRequest(PROMPT, frames=4, seed=tk.request.seed))
            ]
        )
        np.testing.assert_array_equal(s.timeline.media[tk.media].frames, made)

    # choose take 1 from the clip's right-click menu; undo shows take 3 again
    menu = right_click(w.timeline_view, clip)
    assert action(menu, "Take 3").isChecked()
    action(menu, "Take 1").trigger()
    menu.close()
    clip = s.timeline.clips[0]
    assert clip.take_index == 0 and clip.request.seed == 40
    np.testing.assert_array_equal(
        s.timeline.clip_frames(clip.id), s.timeline.media[takes[0].media].frames
    )
    s.undo.undo()
    assert s.timeline.clips[0].take_index == 2

    # compare: the shown take (3) beside the next (1), in step; keep the right one
    menu = right_click(w.timeline_view, s.timeline.clips[0])
    action(menu, "Compare takes").trigger()
    menu.close()
    dialog = w.compare_dialog
    assert dialog.isVisible()
    assert [p.currentIndex() for p in dialog.pickers] == [2, 0]
    dialog.toggle()  # pause
    dialog.step()
    dialog.step()
    assert dialog.shown() == [2, 2]
    left = dialog.screens[0].pixmap().toImage()
    assert left.width() == 320  # the demo's pixels, scaled up
    right_use = [b for b in dialog.findChildren(type(dialog.play)) if b.text() == "Use this take"][
        1
    ]
    right_use.click()
    assert s.timeline.clips[0].take_index == 0 and not dialog.isVisible()
    close_editor(ed)
