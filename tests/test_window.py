"""The main window as a creator meets it (issue 32): playback keys wherever the user clicked last,
J/K/L, loop, zoom and fullscreen, the dock layout on a laptop screen, the start image in the
preview, one message banner at a time, a frame counter from 0, context menu, shortcut sheet, the
start screen and reopening the last project. The real MainWindow over a Studio whose engine never
starts (clips are put on the timeline directly), so each test takes well under a second."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QMenu, QPushButton

from app.state.draft import ImageSource
from app.state.request import ClipRequest
from app.state.timeline import Clip, new_id
from app_utils import ScriptedDialogs, engine_free_window, isolated_settings, psnr, shown_frame

PROMPT = "a large red circle moves right on a black background"


def make_window(qtbot, folder, **answers) -> SimpleNamespace:
    window = engine_free_window(qtbot, folder, (1400, 900), **answers)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    return SimpleNamespace(studio=window.studio, window=window, folder=folder)


@pytest.fixture
def ed(qtbot, tmp_path):
    ed = make_window(qtbot, tmp_path)
    yield ed
    ed.window.shutdown()
    assert not ed.window.preview.play_timer.isActive()


def add_clip(studio, frames: int = 9, seed: int = 0) -> str:
    t = studio.timeline
    pixels = np.random.default_rng(seed).integers(0, 255, (frames, t.height, t.width, 3), np.uint8)
    media = t.add_media(pixels, "generated", "made")
    record = ClipRequest("t2v", PROMPT, 3, 2.5, frames, model="demo")
    clip = Clip(new_id("c"), media.id, 0, frames, "made", record)
    t.insert(len(t.clips), clip)
    return clip.id


def key_to_focus(qtbot, key) -> None:
    """A key press as the user makes it: to whichever widget has the keyboard focus."""
    qtbot.keyClick(QApplication.focusWidget(), key)


# ---- defect 5: playback keys wherever the user clicked last -------------------------------------
def test_space_plays_after_clicking_the_preview_not_the_prompt(qtbot, ed):
    s, w = ed.studio, ed.window
    add_clip(s)
    prompt = w.inspector.prompt
    prompt.setFocus()
    qtbot.waitUntil(prompt.hasFocus)
    qtbot.keyClicks(prompt, "a red")
    key_to_focus(qtbot, Qt.Key.Key_Space)  # typing: the space goes into the prompt
    assert s.draft.prompt == "a red " and not w.preview.playing

    qtbot.mouseClick(w.preview.canvas, Qt.MouseButton.LeftButton)
    assert not prompt.hasFocus()
    key_to_focus(qtbot, Qt.Key.Key_Space)
    assert w.preview.playing and s.draft.prompt == "a red "
    key_to_focus(qtbot, Qt.Key.Key_Space)
    assert not w.preview.playing
    s.timeline.set_playhead(3)
    key_to_focus(qtbot, Qt.Key.Key_Right)
    key_to_focus(qtbot, Qt.Key.Key_Right)
    key_to_focus(qtbot, Qt.Key.Key_Left)
    assert s.timeline.playhead == 4


def test_a_click_on_a_transport_button_or_a_label_also_frees_the_keys(qtbot, ed):
    s, w = ed.studio, ed.window
    add_clip(s)
    for target in (w.preview.next_button, w.inspector.heading):
        w.inspector.prompt.setFocus()
        qtbot.waitUntil(w.inspector.prompt.hasFocus)
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton)
        before = s.timeline.playhead
        key_to_focus(qtbot, Qt.Key.Key_Right)
        assert s.timeline.playhead == before + 1, target
    # a spin box is a text field: Right moves its cursor, the playhead stays
    w.inspector.seed.setFocus()
    qtbot.waitUntil(w.inspector.seed.hasFocus)
    before = s.timeline.playhead
    key_to_focus(qtbot, Qt.Key.Key_Right)
    assert s.timeline.playhead == before


def test_jkl_shuttle_and_loop(qtbot, ed):
    s, w = ed.studio, ed.window
    p = w.preview
    add_clip(s, frames=9)
    qtbot.mouseClick(p.canvas, Qt.MouseButton.LeftButton)
    key_to_focus(qtbot, Qt.Key.Key_L)
    assert p.playing and p.rate == 1
    key_to_focus(qtbot, Qt.Key.Key_L)
    assert p.rate == 2 and p.play_timer.interval() < round(1000 / s.timeline.fps)
    key_to_focus(qtbot, Qt.Key.Key_L)
    key_to_focus(qtbot, Qt.Key.Key_L)
    assert (
        p.rate == 8 and p.frames_per_tick == 2
    )  # 8 x 16 fps: 60 paints a second, every other frame
    assert p.play_timer.interval() >= 1000 // 60
    key_to_focus(qtbot, Qt.Key.Key_K)
    assert not p.playing
    s.timeline.set_playhead(5)
    key_to_focus(qtbot, Qt.Key.Key_J)
    assert p.playing and p.rate == -1
    qtbot.waitUntil(lambda: s.timeline.playhead <= 3, timeout=3000)
    key_to_focus(qtbot, Qt.Key.Key_K)

    assert p.loop  # looping is on by default: the end wraps to the start
    qtbot.mouseClick(p.loop_button, Qt.MouseButton.LeftButton)
    assert not p.loop and not p.actions.loop.isChecked()
    s.timeline.set_playhead(6)
    p.play()
    qtbot.waitUntil(lambda: not p.playing, timeout=3000)  # stops at the last frame
    assert s.timeline.playhead == 8
    assert not s.settings.loop  # kept for the next start


def test_zoom_one_to_one_and_fullscreen(qtbot, ed):
    s, w = ed.studio, ed.window
    p = w.preview
    add_clip(s)
    fit = p.canvas.target_rect()
    assert fit.width() > 4 * s.timeline.width
    w.actions_.actual_size.trigger()
    one = p.canvas.target_rect()
    ratio = p.canvas.devicePixelRatioF()
    assert round(one.width() * ratio) == s.timeline.width
    w.actions_.fit.trigger()
    assert p.canvas.target_rect() == fit

    w.actions_.fullscreen.trigger()
    full = p.fullscreen
    qtbot.waitExposed(full)
    assert full.isFullScreen() and full.canvas.image == p.canvas.image
    s.timeline.set_playhead(4)  # the fullscreen canvas follows the playhead
    assert full.canvas.image == p.canvas.image
    qtbot.waitUntil(lambda: QApplication.activeWindow() is full)
    qtbot.keyClick(full, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: p.fullscreen is None)


# ---- defect 7: the docks on a laptop screen -----------------------------------------------------
def test_the_right_column_runs_the_full_height_on_a_laptop_screen(qtbot, ed):
    """1280 x 720: the timeline sits under the preview only, so the inspector and the jobs have the
    window's whole height; the inspector gets the height its form needs while the jobs keep their
    minimum."""
    w = ed.window
    w.resize(1280, 720)
    w.reset_layout()
    qtbot.wait(50)
    ins, jobs, tl = w.inspector_dock, w.jobs_dock, w.timeline_dock
    assert tl.geometry().right() < ins.geometry().left()
    assert jobs.geometry().bottom() > tl.geometry().top()  # beside the timeline, not above it
    column = jobs.geometry().bottom() - ins.geometry().top()
    assert column > 0.85 * w.centralWidget().height()
    need = w.inspector.preferred_height() + ins.height() - w.inspector.height()
    jobs_min = jobs.minimumSizeHint().height()
    if need + jobs_min <= column:
        assert w.inspector.scroll.verticalScrollBar().maximum() == 0
    assert jobs.height() >= jobs_min


def test_the_first_window_fits_the_screen_it_opens_on():
    from app.main_window import DEFAULT_SIZE, window_geometry

    minimum = QSize(960, 640)
    assert window_geometry(QRect(0, 0, 1920, 1050), minimum) == (QSize(*DEFAULT_SIZE), False)
    laptop = QRect(0, 0, 1280, 690)
    assert window_geometry(laptop, minimum) == (laptop.size(), True)  # all of it, maximised
    assert window_geometry(QRect(0, 0, 800, 600), minimum) == (QSize(*DEFAULT_SIZE), False)


def test_a_layout_saved_by_the_old_version_is_not_restored(qtbot, tmp_path):
    first = make_window(qtbot, tmp_path)
    w = first.window
    w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, w.jobs_dock)  # the user moves Jobs
    w.shutdown()
    again = make_window(qtbot, tmp_path)
    assert (
        again.window.dockWidgetArea(again.window.jobs_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    )
    again.window.shutdown()
    settings = again.studio.settings
    settings.set_window_state(settings.window_state()[0], w.saveState(1))  # an older layout
    old = make_window(qtbot, tmp_path)
    assert old.window.dockWidgetArea(old.window.jobs_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    old.window.shutdown()


# ---- defect 10: the model manager ---------------------------------------------------------------
def brightest_blue(widget) -> int:
    image = widget.grab().toImage()
    return max(
        QColor(image.pixel(x, image.height() // 2)).blue()
        - QColor(image.pixel(x, image.height() // 2)).red()
        for x in range(2, image.width() - 2)
    )


def test_model_manager_download_button_dims_and_errors_keep_the_form(qtbot, tmp_path):
    from app.__main__ import create_app
    from app.model_manager import ModelManagerDialog

    create_app(["test"])  # the real theme
    dialog = ModelManagerDialog(isolated_settings(tmp_path), ScriptedDialogs())
    qtbot.addWidget(dialog)
    dialog.resize(700, 640)
    dialog.show()
    qtbot.waitExposed(dialog)
    try:
        button = dialog.download
        assert not button.isEnabled()
        disabled = brightest_blue(button)
        dialog.accept_box.setEnabled(True)
        dialog.license_text.setPlainText("licence")
        dialog.accept_box.setChecked(True)
        assert button.isEnabled()
        enabled = brightest_blue(button)
        assert enabled > 100 and disabled < 40, (enabled, disabled)
        generate = QPushButton("Generate", objectName="primary", enabled=False)
        qtbot.addWidget(generate)  # every primary button, the inspector's Generate too
        generate.show()
        assert brightest_blue(generate) < 40

        fields = [p.repo for p in dialog.panels.values()] + [dialog.folder, dialog.endpoint]
        qtbot.wait(50)  # the licence box shown: the layout settles
        heights = [f.height() for f in fields]
        long_error = "licence request failed: " + "the Hub answered 401 Unauthorized " * 12
        dialog._on_failed("flow", long_error)
        qtbot.wait(50)
        assert [f.height() for f in fields] == heights
        assert all(f.height() >= f.minimumSizeHint().height() for f in fields)
        assert "401" in dialog.status_text()
        from PySide6.QtWidgets import QAbstractButton, QLineEdit

        untipped = [
            w.text() or type(w).__name__
            for w in dialog.findChildren(QAbstractButton) + dialog.findChildren(QLineEdit)
            if not w.toolTip()
        ]
        assert untipped == []
    finally:
        dialog.shutdown()


def test_model_manager_says_what_the_7b_needs_and_whether_this_machine_runs_it(qtbot, tmp_path):
    import torch

    from app.model_manager import ModelManagerDialog, requirements_text

    dialog = ModelManagerDialog(isolated_settings(tmp_path), ScriptedDialogs())
    qtbot.addWidget(dialog)
    try:
        text = dialog.requirements.text()
        low = text.lower()
        assert "gib" in low and "download" in low and "disk" in low and "gpu" in low
        if not torch.cuda.is_available():
            assert "no CUDA GPU" in text
        assert "no CUDA GPU" in requirements_text(None, "")
        assert "runs it" in requirements_text(80 * 2**30, "H100")
        assert "too small" in requirements_text(8 * 2**30, "small card")
    finally:
        dialog.shutdown()


# ---- defect 11: spin-box arrows, the banner's icon, one banner at a time --------------------------
def test_spin_box_arrows_are_drawn(qtbot, tmp_path):
    from PySide6.QtWidgets import QSpinBox

    from app.__main__ import create_app

    create_app(["test"])
    box = QSpinBox()
    qtbot.addWidget(box)
    box.setRange(0, 10)
    box.setValue(5)
    box.resize(120, 30)
    box.show()
    qtbot.waitExposed(box)
    image = box.grab().toImage()
    ratio = image.width() / box.width()
    light = sum(
        QColor(image.pixel(int(x * ratio), int(y * ratio))).lightness() > 150
        for x in range(box.width() - 20, box.width() - 2)
        for y in range(2, box.height() - 2)
    )
    assert light >= 6  # the two arrows' pixels


def test_one_banner_at_a_time_with_a_count_and_a_real_icon(qtbot, ed):
    s, w = ed.studio, ed.window
    add_clip(s)
    s.messages.error("first problem")
    qtbot.waitUntil(w.message_area.isVisible)
    area = w.message_area
    one = area.height()
    preview = w.preview.height()
    line = w.fontMetrics().lineSpacing()
    for i in range(5):
        s.messages.warning(f"problem {i} " + "with a long explanation " * 40)
    qtbot.wait(50)
    assert area.height() <= one + 3 * line
    assert w.preview.height() >= preview - 3 * line
    assert not area.icon.pixmap().isNull()
    assert area.count.text() == "6 of 6" and len(area.texts()) == 6
    area.show_index(-5)
    assert area.label.text() == "first problem" and area.count.text() == "1 of 6"
    area.dismiss()
    assert area.count.text() == "1 of 5" and "first problem" not in area.texts()
    area.dismiss_all()
    assert not area.isVisible() and area.texts() == []


# ---- defect 12: the start image in the preview ----------------------------------------------------
def test_an_opened_start_image_shows_in_the_preview(qtbot, ed):
    s, w = ed.studio, ed.window
    add_clip(s)
    image = np.zeros((s.timeline.height, s.timeline.width, 3), np.uint8)
    image[10:30, 20:40] = (230, 40, 40)
    s.draft.set(mode="i2v", image=ImageSource("start.png", image))
    assert "start image" in w.preview.counter.text()
    qtbot.waitUntil(lambda: w.preview.canvas.paints > 0)
    assert psnr(shown_frame(w.preview.canvas), image) > 30
    w.preview.step(1)  # the user moves the playhead: the timeline again
    assert "start image" not in w.preview.counter.text()
    assert psnr(shown_frame(w.preview.canvas), s.timeline.frame(1)) > 30
    s.draft.set(mode="t2v")
    s.draft.set(mode="i2v")  # back to Image to video: its start image again
    assert "start image" in w.preview.counter.text()
    s.draft.set(mode="t2v")  # another mode: the start image is not what it makes
    assert "start image" not in w.preview.counter.text()


# ---- defect 14: counting from 0, the preview's context menu ---------------------------------------
def test_the_counter_counts_from_zero_like_the_ruler(qtbot, ed):
    s, w = ed.studio, ed.window
    add_clip(s, frames=17)
    assert "frame 0 of 0–16" in w.preview.counter.text()
    s.timeline.set_playhead(16)
    assert "frame 16 of 0–16" in w.preview.counter.text()


def test_preview_context_menu(qtbot, ed, monkeypatch):
    s, w = ed.studio, ed.window
    add_clip(s)
    menu = w.preview.show_menu(w.preview.canvas.mapToGlobal(QPoint(20, 20)))
    assert isinstance(menu, QMenu)
    texts = [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]
    for wanted in ("Play / pause", "Loop playback", "Zoom to fit", "Actual size (1:1)"):
        assert wanted in texts
    assert any("Fullscreen" in t for t in texts) and any("Export frame" in t for t in texts)
    asked = []
    monkeypatch.setattr(s.project, "export_frame", lambda *a: asked.append(a))
    w.preview.actions.export.trigger()
    menu.close()
    w.preview.actions.copy.trigger()
    assert QApplication.clipboard().image().size() == QSize(s.timeline.width, s.timeline.height)


# ---- help: shortcut sheet, tooltips, start screen, reopening the last project ---------------------
def test_shortcut_sheet_lists_every_menu_key(qtbot, ed):
    w = ed.window
    qtbot.mouseClick(w.preview.canvas, Qt.MouseButton.LeftButton)
    key_to_focus(qtbot, Qt.Key.Key_F1)
    sheet = w.shortcut_sheet
    qtbot.waitExposed(sheet)
    keys = {(row[1], row[2]) for row in sheet.rows}
    assert ("Space", "Play / pause") in keys and ("J", "Play backwards (J, again: faster)") in keys
    assert any(k.startswith("Ctrl+Return") and t == "Generate" for k, t in keys)
    undo = next(k for k, t in keys if t == "Undo")
    assert undo.startswith("Ctrl+Z") and "F14" not in undo  # not a keyboard's extra keys
    assert ("Ctrl+Q", "Quit") in keys and all(k for k, _t in keys)
    sheet.filter.setText("loop")
    assert [r[2] for r in sheet.visible_rows()] == ["Loop playback"]
    sheet.close()


def test_every_control_of_the_window_has_a_tooltip(qtbot, ed):
    from PySide6.QtWidgets import QAbstractButton

    w = ed.window
    owned = [w.preview, w.message_area, w.start_screen]
    missing = [
        b.text() or b.objectName() or type(b).__name__
        for view in owned
        for b in view.findChildren(QAbstractButton)
        if not b.toolTip()
    ]
    assert missing == []
    assert all(label.toolTip() for label in (w.status.model, w.status.device, w.status.memory))
    for menu in w.menuBar().findChildren(QMenu):
        for action in menu.actions():
            if not action.isSeparator() and action.menu() is None:
                assert action.statusTip() or action.toolTip(), action.text()


def test_start_screen_until_something_is_made(qtbot, tmp_path):
    ed = make_window(qtbot, tmp_path / "a")
    w, s = ed.window, ed.studio
    assert w.pages.currentWidget() is w.start_screen
    add_clip(s)
    assert w.pages.currentWidget() is w.preview
    project = tmp_path / "project"
    s.save_as(project)
    qtbot.waitUntil(lambda: not s.tasks.busy and s.project_path is not None, timeout=10_000)
    w.shutdown()
    ed2 = make_window(qtbot, tmp_path / "a")  # the next start, with the same preferences
    w2 = ed2.window
    assert w2.pages.currentWidget() is w2.start_screen
    item = w2.start_screen.recent.item(0)
    assert item.data(Qt.ItemDataRole.UserRole) == str(project.absolute())
    w2.start_screen.recent.itemActivated.emit(item)
    qtbot.waitUntil(lambda: ed2.studio.project_path is not None, timeout=10_000)
    assert w2.pages.currentWidget() is w2.preview
    w2.shutdown()


def test_reopen_the_last_project_at_start(qtbot, tmp_path):
    first = make_window(qtbot, tmp_path)
    add_clip(first.studio)
    first.studio.save_as(tmp_path / "last")
    qtbot.waitUntil(lambda: not first.studio.tasks.busy, timeout=10_000)
    first.window.start_screen.reopen.setChecked(True)  # the start screen's box is the setting
    assert first.window.actions_.reopen_last.isChecked()
    first.window.shutdown()

    again = make_window(qtbot, tmp_path)
    assert again.studio.settings.reopen_last
    again.studio.project.start()  # what studio.start() does after the model load begins
    qtbot.waitUntil(lambda: again.studio.project_path is not None, timeout=10_000)
    assert again.studio.project_path.name == "last" and len(again.studio.timeline.clips) == 1
    again.window.shutdown()

    again.studio.settings.reopen_last = False
    off = make_window(qtbot, tmp_path)
    off.studio.project.start()
    qtbot.wait(400)
    assert (
        off.studio.project_path is None
        and off.window.pages.currentWidget() is off.window.start_screen
    )
    off.window.shutdown()


def test_playback_keys_in_the_fullscreen_preview(qtbot, ed):
    s, w = ed.studio, ed.window
    add_clip(s)
    w.preview.toggle_fullscreen()
    full = w.preview.fullscreen
    qtbot.waitExposed(full)
    full.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is full)
    qtbot.keyClick(full, Qt.Key.Key_Right)
    assert s.timeline.playhead == 1
    full.close()
    qtbot.waitUntil(lambda: w.preview.fullscreen is None)


def test_file_menu_exports_through_the_export_dialog_and_the_title_says_read_only(qtbot, ed):
    """File > Export timeline… / Export selected clip… open the export dialog (formats, scale,
    range), not the MP4-only file picker; a project opened read-only says so in the title."""
    from app.export import ExportDialog

    s, w = ed.studio, ed.window
    clip = add_clip(s)
    s.timeline.select(clip)
    for action in (w.actions_.export, w.actions_.export_clip):
        action.trigger()
        dialogs = [d for d in w.findChildren(ExportDialog) if d.isVisible()]
        assert len(dialogs) == 1
        dialogs[0].close()
        dialogs[0].deleteLater()
    assert "(read-only)" not in w.windowTitle()
    s.project.read_only = True
    s.project_changed.emit()
    assert "(read-only)" in w.windowTitle()


# ---- copy and paste clips with the keys ---------------------------------------------------------
def ctrl(qtbot, key) -> None:
    """Ctrl+key to whichever widget has the keyboard focus, as the user presses it."""
    qtbot.keyClick(QApplication.focusWidget(), key, Qt.KeyboardModifier.ControlModifier)


def test_ctrl_c_ctrl_v_paste_a_copy_after_the_selected_clip_and_undo_removes_it(qtbot, ed):
    s, w = ed.studio, ed.window
    t = s.timeline
    first, second = add_clip(s, 9, seed=1), add_clip(s, 5, seed=2)
    t.select(first)
    w.timeline_view.setFocus()
    ctrl(qtbot, Qt.Key.Key_V)  # nothing copied yet: said so, nothing added
    assert len(t.clips) == 2 and "Copy a clip first" in s.messages.latest().text
    ctrl(qtbot, Qt.Key.Key_C)
    t.select(second)
    ctrl(qtbot, Qt.Key.Key_V)
    assert [c.id for c in t.clips][:2] == [first, second] and len(t.clips) == 3
    pasted = t.clips[2]
    assert pasted.id not in (first, second) and pasted.length == 9
    assert np.array_equal(t.clip_frames(pasted.id), t.clip_frames(first))
    t.select(None)
    ctrl(qtbot, Qt.Key.Key_V)  # nothing selected: at the end
    assert len(t.clips) == 4 and t.clips[3].length == 9
    s.undo.undo()
    s.undo.undo()
    assert [c.id for c in t.clips] == [first, second]
    # typing in the prompt: Ctrl+V pastes text there, not a clip
    QApplication.clipboard().setText("a blue square")
    w.inspector.prompt.setFocus()
    ctrl(qtbot, Qt.Key.Key_V)
    assert len(t.clips) == 2 and "a blue square" in w.inspector.prompt.toPlainText()


# ---- preferences kept for the next start --------------------------------------------------------
def test_the_seed_field_its_mode_and_takes_are_kept_for_the_next_start(qtbot, tmp_path):
    first = make_window(qtbot, tmp_path)
    ins = first.window.inspector
    ins.seed_mode.setCurrentIndex(ins.seed_mode.findData("next"))
    ins.takes.setValue(3)
    ins.seed.setValue(40)
    ins.prompt.setFocus()
    qtbot.keyClicks(ins.prompt, PROMPT)
    ctrl(qtbot, Qt.Key.Key_Return)  # queued (no model here): seeds 40-42, the field moves on
    assert [j.record.seed for j in first.studio.jobs.jobs] == [40, 41, 42]
    clip = add_clip(first.studio, seed=3)
    first.studio.regenerate(clip, seed=7)  # a Regenerate's seed is not the field's
    assert ins.seed.value() == 43
    first.window.shutdown()
    first.window.close()
    again = make_window(qtbot, tmp_path)
    ins = again.window.inspector
    assert ins.seed_mode.currentData() == "next" and ins.takes.value() == 3
    assert ins.seed.value() == 43 and again.studio.draft.takes == 3
    again.window.shutdown()
