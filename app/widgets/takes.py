"""Compare two takes of a clip side by side, playing in sync; keep either one."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from ..images import to_qimage
from ..state.timeline import Take, Timeline

SIDE = 320  # px: the width each take is shown at


class CompareTakesDialog(QDialog):
    """Two takes of clip `clip_id` (the shown one and the next), frame k of each at once."""

    chosen = Signal(int)  # the take index to show on the timeline

    def __init__(self, timeline: Timeline, clip_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline, self.clip_id = timeline, clip_id
        clip = timeline.clip(clip_id)
        self.takes: tuple[Take, ...] = clip.all_takes()
        self.setWindowTitle(f"Compare takes: {clip.name}")
        self.frame = 0
        self.pickers: list[QComboBox] = []
        self.screens: list[QLabel] = []
        grid = QGridLayout(self)
        active = clip.take_index
        for side, index in enumerate((active, (active + 1) % len(self.takes))):
            picker = QComboBox(toolTip="Which take this side shows")
            for i, take in enumerate(self.takes):
                seed = f" · seed {take.request.seed}" if take.request else ""
                picker.addItem(f"Take {i + 1}{seed} · {take.stop - take.start} frames")
            picker.setCurrentIndex(index)
            picker.currentIndexChanged.connect(lambda _i: self.show_frame())
            screen = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
            screen.setMinimumSize(SIDE, SIDE * timeline.height // max(timeline.width, 1))
            use = QPushButton("Use this take", toolTip="Show this take on the timeline")
            use.clicked.connect(lambda _c=False, p=picker: self._use(p.currentIndex()))
            grid.addWidget(picker, 0, side)
            grid.addWidget(screen, 1, side)
            grid.addWidget(use, 2, side)
            self.pickers.append(picker)
            self.screens.append(screen)
        self.play = QPushButton("Pause", toolTip="Play or pause both takes")
        self.play.clicked.connect(self.toggle)
        grid.addWidget(self.play, 3, 0, 1, 2)
        self.timer = QTimer(self)
        self.timer.setInterval(round(1000 / max(timeline.fps, 1)))
        self.timer.timeout.connect(self.step)
        self.finished.connect(lambda _r: self.timer.stop())
        self.show_frame()
        self.timer.start()

    def frames_of(self, side: int) -> np.ndarray:
        """The (T, H, W, 3) frames the take on `side` (0 left, 1 right) shows."""
        take = self.takes[self.pickers[side].currentIndex()]
        return self.timeline.media[take.media].frames[take.start : take.stop]

    def shown(self) -> list[int]:
        """The frame index each side shows now (the shorter take holds its last frame)."""
        return [min(self.frame, len(self.frames_of(s)) - 1) for s in (0, 1)]

    def step(self) -> None:
        longest = max(len(self.frames_of(s)) for s in (0, 1))
        self.frame = (self.frame + 1) % longest
        self.show_frame()

    def toggle(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
        else:
            self.timer.start()
        self.play.setText("Pause" if self.timer.isActive() else "Play")

    def show_frame(self) -> None:
        for side, k in enumerate(self.shown()):
            image = to_qimage(self.frames_of(side)[k])
            small = image.width() < SIDE / 2  # the demo's pixels stay sharp
            mode = (
                Qt.TransformationMode.FastTransformation
                if small
                else Qt.TransformationMode.SmoothTransformation
            )
            self.screens[side].setPixmap(QPixmap.fromImage(image.scaledToWidth(SIDE, mode)))

    def _use(self, index: int) -> None:
        self.chosen.emit(index)
        self.accept()
