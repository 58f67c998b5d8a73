"""Export (issue 32, defect 13 and the export feature): engine/export.py writes MP4, WebM and GIF
that decode to the frames asked for (count, size, range, scaling); the dialog in the real window
suggests a name from the clip in the project's folder and exports off the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app.commands import AddClip
from app.state.timeline import Clip, new_id
from app_utils import engine_free_window
from engine.api import Cancelled, EngineError
from engine.export import ExportOptions, export_frames, scale_frames


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as f:
        return np.stack([fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)])


def flat_frames(n: int = 10, w: int = 64, h: int = 48) -> np.ndarray:
    """Flat shapes on a background, as the demo draws them (few colours)."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:] = (20, 30, 200)
    for i in range(n):
        frames[i, 10:20, 4 + i : 14 + i] = (230, 40, 40)
    return frames


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_each_format_decodes_to_the_range_and_size_asked_for(tmp_path, fmt):
    frames = flat_frames()
    path = tmp_path / f"out.{fmt}"
    options = ExportOptions(format=fmt, scale=4, start=2, stop=9)
    assert export_frames(frames, path, 16, options, {"comment": "test"}) == 7
    out = decode(path)
    assert out.shape == (7, 192, 256, 3)
    expected = np.repeat(np.repeat(frames[2:9], 4, 1), 4, 2)  # nearest: 4x4 blocks
    error = np.abs(out.astype(int) - expected).mean()
    assert error == 0 if fmt == "gif" else error < 3
    assert not list(tmp_path.glob("*.tmp*"))  # nothing left beside it


def test_small_frames_scale_by_nearest_and_large_ones_smoothly(tmp_path):
    small = flat_frames(2)
    np.testing.assert_array_equal(
        scale_frames(small, 128, 96, smooth=False), np.repeat(np.repeat(small, 2, 1), 2, 2)
    )
    large = np.zeros((1, 240, 320, 3), np.uint8)
    large[:, :, 160:] = 255
    smooth = scale_frames(large, 640, 480, smooth=True)
    edge = smooth[0, 100, 316:324, 0]
    assert 0 < edge.min() or edge.max() < 255 or len(set(edge.tolist())) > 2  # a soft edge
    path = tmp_path / "large.mp4"
    export_frames(large, path, 16, ExportOptions(scale=2))  # auto: smooth for 320 px
    assert decode(path).shape == (1, 480, 640, 3)
    path = tmp_path / "small.gif"
    export_frames(small, path, 16, ExportOptions(format="gif", scale=3))  # auto: nearest
    np.testing.assert_array_equal(decode(path), np.repeat(np.repeat(small, 3, 1), 3, 2))


def test_quality_changes_the_file_and_bad_options_are_named(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
    sizes = []
    for q in (20, 95):
        path = tmp_path / f"q{q}.mp4"
        export_frames(frames, path, 16, ExportOptions(quality=q, scale=2))
        sizes.append(path.stat().st_size)
    assert sizes[0] < sizes[1]
    for bad, words in (
        (ExportOptions(format="avi"), "unknown export format"),
        (ExportOptions(start=4, stop=4), "frame range"),
        (ExportOptions(quality=101), "quality"),
        (ExportOptions(scale=500), "scale"),
    ):
        with pytest.raises(EngineError, match=words):
            export_frames(frames, tmp_path / "bad.mp4", 16, bad)
    assert not (tmp_path / "bad.mp4").exists()


def test_a_cancelled_export_leaves_the_old_file(tmp_path):
    path = tmp_path / "keep.webm"
    path.write_bytes(b"old")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        export_frames(flat_frames(), path, 16, ExportOptions(format="webm"), cancel=cancel)
    assert path.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


# ---- the dialog in the real window -----------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path):
    w = engine_free_window(qtbot, tmp_path)
    yield w
    w.shutdown()


def test_the_dialog_suggests_the_clips_name_in_the_project_folder(qtbot, window, tmp_path):
    from app.export import file_stem, open_export_dialog

    s = window.studio
    t = s.timeline
    frames = flat_frames(12)
    media = t.add_media(frames, "generated", "shapes")
    clip = Clip(new_id("c"), media.id, 0, 12, "Text: a red square moves right")
    s.undo.push(AddClip(t, clip, 0))
    folder = tmp_path / "project"
    s.save_as(folder)
    qtbot.waitUntil(lambda: not s.busy and s.project_path is not None, timeout=10_000)
    t.set_playhead(3)

    dialog = open_export_dialog(s, window, clip.id)
    assert dialog.isVisible()
    assert Path(dialog.path.text()) == folder / "a-red-square-moves-right.mp4"
    assert dialog.scale.value() == 4.0 and "256 × 192" in dialog.size_label.text()
    dialog.format.setCurrentIndex(dialog.format.findData("gif"))
    assert dialog.path.text().endswith(".gif")
    dialog.smoothing.setCurrentText("Nearest (sharp pixels)")
    dialog.scale.setValue(2.0)
    dialog.mark_in.click()  # in at the playhead: frame 3
    dialog.last.setValue(9)
    with qtbot.waitSignal(s.export_done, timeout=30_000) as done:
        dialog.ok_button.click()
    out = decode(Path(done.args[0]))
    np.testing.assert_array_equal(out, np.repeat(np.repeat(frames[3:10], 2, 1), 2, 2))
    assert file_stem("Edit: make the red circle blue!") == "make-the-red-circle-blue"
    QApplication.processEvents()


def test_a_new_projects_folder_not_made_yet_is_not_suggested(qtbot, window, tmp_path):
    """`python -m app NEW_FOLDER`: the folder is made by the first save; until then the export
    dialog suggests a folder that exists (an export there failed: 'folder not found')."""
    from app.export import open_export_dialog

    s = window.studio
    later = tmp_path / "later"
    s.project.start(later)
    assert s.project_path == later and not later.exists()
    t = s.timeline
    media = t.add_media(flat_frames(4), "generated", "shapes")
    clip = Clip(new_id("c"), media.id, 0, 4, "Text: a red square moves right")
    s.undo.push(AddClip(t, clip, 0))
    dialog = open_export_dialog(s, window, clip.id)
    assert Path(dialog.path.text()).parent.is_dir()
    dialog.close()
