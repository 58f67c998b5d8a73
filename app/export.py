"""The export dialog: the timeline or one clip to MP4, WebM or GIF, scaled, a frame range, a
quality; the file name suggested from the clip, in the project's folder. Encoding runs off the
GUI thread (engine.export through the studio's file tasks).

    dialog = open_export_dialog(studio, window, clip_id)   # None: the whole timeline
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from engine.export import FORMATS, SMALL_WIDTH, ExportOptions, export_frames

if TYPE_CHECKING:
    from .studio import Studio

SMOOTHING = {"Auto (by frame size)": None, "Nearest (sharp pixels)": False, "Smooth": True}


def file_stem(name: str, fallback: str = "export") -> str:
    """A file name from a clip name: 'Text: a red circle' -> 'a-red-circle'."""
    name = name.split(":", 1)[-1] if ":" in name else name
    stem = re.sub(r"[^\w]+", "-", name.strip().lower()).strip("-")[:60].strip("-")
    return stem or fallback


def default_folder(studio: Studio) -> Path:
    """The project's folder, else the last export folder, else the home folder."""
    if studio.project_path is not None and Path(studio.project_path).is_dir():
        return Path(studio.project_path)  # (a new project's folder is made by its first save)
    last = studio.settings.last_dir("export")
    return Path(last) if last and Path(last).is_dir() else Path.home()


class ExportDialog(QDialog):
    """Options for one export; `export()` (OK) queues it and returns its path. The studio's
    `export_done` tells when the file is written (the dialog may be gone by then)."""

    def __init__(self, studio: Studio, clip_id: str | None = None, parent=None) -> None:
        super().__init__(parent)
        self.studio = studio
        t = studio.timeline
        self.clip = t.clip(clip_id)
        self.clips = [self.clip] if self.clip else list(t.clips)
        self.length = sum(c.length for c in self.clips)
        self.setWindowTitle("Export clip" if self.clip else "Export timeline")

        self.format = QComboBox(toolTip="The file type")
        for key, text in FORMATS.items():
            self.format.addItem(text, key)
        self.scale = QDoubleSpinBox(
            minimum=0.25, maximum=16.0, singleStep=1.0, decimals=2, suffix=" ×"
        )
        self.scale.setToolTip("Frame size factor")
        self.scale.setValue(4.0 if t.width < SMALL_WIDTH else 1.0)
        self.smoothing = QComboBox(toolTip="Nearest keeps pixel art sharp; smooth suits photos")
        self.smoothing.addItems(list(SMOOTHING))
        self.size_label = QLabel()
        self.quality = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=80)
        self.quality.setToolTip("Higher: a larger file closer to the frames")
        self.quality_label = QLabel("80")
        self.start = QSpinBox(minimum=0, maximum=max(self.length - 1, 0), toolTip="First frame")
        self.last = QSpinBox(minimum=0, maximum=max(self.length - 1, 0), toolTip="Last frame")
        self.last.setValue(self.length - 1)
        self.mark_in = QPushButton("In at playhead", toolTip="Start the export at the playhead")
        self.mark_out = QPushButton("Out at playhead", toolTip="End the export after the playhead")
        self.mark_in.clicked.connect(lambda: self.start.setValue(self.playhead()))
        self.mark_out.clicked.connect(lambda: self.last.setValue(self.playhead()))
        self.path = QLineEdit(toolTip="Where the file is written")
        self.path.setMinimumWidth(360)
        browse = QPushButton("Browse…", toolTip="Choose the file")
        browse.clicked.connect(self._browse)
        name = self.clip.name if self.clip else (studio.project_path or Path("timeline")).name
        self.path.setText(str(default_folder(studio) / f"{file_stem(name)}.mp4"))

        form = QFormLayout(self)
        form.addRow("Format", self.format)
        form.addRow("Scale", self.scale)
        form.addRow("Scaling", self.smoothing)
        form.addRow("", self.size_label)
        quality = QHBoxLayout()
        quality.addWidget(self.quality, 1)
        quality.addWidget(self.quality_label)
        form.addRow("Quality", quality)
        frames = QHBoxLayout()
        frames.addWidget(self.start)
        frames.addWidget(QLabel("to"))
        frames.addWidget(self.last)
        form.addRow("Frames", frames)
        marks = QHBoxLayout()
        marks.addWidget(self.mark_in)
        marks.addWidget(self.mark_out)
        form.addRow("", marks)
        where = QHBoxLayout()
        where.addWidget(self.path, 1)
        where.addWidget(browse)
        form.addRow("File", where)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Export")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.scale.valueChanged.connect(self._show_size)
        self.quality.valueChanged.connect(lambda v: self.quality_label.setText(str(v)))
        self.start.valueChanged.connect(self.last.setMinimum)
        self._show_size()

    def playhead(self) -> int:
        """The playhead as a frame of what is exported (clamped to it)."""
        t = self.studio.timeline
        frame = t.playhead - (t.offset(self.clip.id) if self.clip else 0)
        return max(0, min(frame, self.length - 1))

    def options(self) -> ExportOptions:
        return ExportOptions(
            format=self.format.currentData(),
            scale=self.scale.value(),
            smooth=SMOOTHING[self.smoothing.currentText()],
            quality=self.quality.value(),
            start=self.start.value(),
            stop=self.last.value() + 1,
        )

    def _format_changed(self) -> None:
        path = Path(self.path.text())
        self.path.setText(str(path.with_suffix("." + self.format.currentData())))
        self.quality.setEnabled(self.format.currentData() != "gif")
        self._show_size()

    def _show_size(self) -> None:
        t = self.studio.timeline
        w, h = self.options().size(t.width, t.height)
        self.size_label.setText(f"{w} × {h} px at {t.fps:g} fps")

    def _browse(self) -> None:
        kind = self.format.currentData()
        path, _ = QFileDialog.getSaveFileName(
            self, "Export", self.path.text(), f"{FORMATS[kind]} (*.{kind})"
        )
        if path:
            self.path.setText(str(Path(path).with_suffix("." + kind)))

    def _accept(self) -> None:
        if self.export() is not None:
            self.accept()

    def export(self) -> Path | None:
        """Queue the export off the GUI thread; None (and a message) when it cannot start."""
        import numpy as np

        s, t = self.studio, self.studio.timeline
        path = Path(self.path.text()).expanduser()
        if not self.clips or not path.name:
            s.messages.error("Nothing to export" if not self.clips else "Choose a file name")
            return None
        path = path.with_suffix("." + self.format.currentData())
        frames = np.concatenate([t.clip_frames(c.id) for c in self.clips])
        options, fps, meta = self.options(), t.fps, s.metadata(self.clips)
        s.settings.set_last_dir("export", path)

        def done(count: int) -> None:
            s.messages.info(f"Exported {count} frames to {path}")
            s.export_done.emit(str(path))

        s.tasks.submit(
            f"export {path.name}",
            lambda: export_frames(frames, path, fps, options, meta),
            done,
            lambda m: s.messages.error(f"Export failed: {m}"),
        )
        return path


def open_export_dialog(
    studio: Studio, parent: QWidget | None = None, clip_id: str | None = None
) -> ExportDialog | None:
    """The (window-modal) export dialog for a clip or, with no clip, the whole timeline."""
    if not studio.timeline.clips:
        studio.messages.error("Nothing to export: the timeline is empty")
        return None
    dialog = ExportDialog(studio, clip_id, parent)
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()
    return dialog
