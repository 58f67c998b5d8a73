"""The preview: the frame under the playhead (or the running job's newest frame), transport
controls and a frame counter. Accepts dropped image/video files."""

from __future__ import annotations

import logging

from PySide6.QtCore import QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import theme
from ..images import to_qimage
from ..state.jobs import JobQueue
from ..state.timeline import Timeline
from .drops import FileDropMixin

log = logging.getLogger(__name__)


class PreviewCanvas(FileDropMixin, QWidget):
    """Paints one QImage scaled to fit (nearest neighbour for small frames); one repaint per
    event-loop pass however many frames arrive."""

    files_dropped = Signal(list)  # local paths

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.overlay = ""
        self.paints = 0
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAcceptDrops(True)

    def show_image(self, image: QImage | None, overlay: str = "") -> None:
        self.image, self.overlay = image, overlay
        self.update()  # coalesced by Qt: several frames per pass paint once

    def target_rect(self) -> QRectF:
        if self.image is None or self.image.isNull():
            return QRectF()
        w, h = self.width() - 16, self.height() - 16
        scale = min(w / self.image.width(), h / self.image.height())
        tw, th = self.image.width() * scale, self.image.height() * scale
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def paintEvent(self, _event) -> None:
        self.paints += 1
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111214"))
        if self.image is None or self.image.isNull():
            p.setPen(QColor(theme.DIM))
            p.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter,
                "Type a prompt and press Ctrl+Enter\nor drop an image or video here",
            )
            return
        rect = self.target_rect()
        smooth = rect.width() < self.image.width() * 2
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        p.drawImage(rect, self.image)
        p.setPen(QPen(QColor(theme.BORDER), 1))
        p.drawRect(rect.adjusted(-1, -1, 0, 0))
        if self.overlay:
            font = QFont(self.font())
            font.setBold(True)
            p.setFont(font)
            fm = p.fontMetrics()
            box = QRect(0, 0, fm.horizontalAdvance(self.overlay) + 20, fm.height() + 10)
            box.moveTopLeft(rect.topLeft().toPoint() + QRect(10, 10, 0, 0).topLeft())
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 170))
            p.drawRoundedRect(box, 5, 5)
            p.setPen(QColor(theme.PLAYHEAD))
            p.setBrush(QColor(theme.PLAYHEAD))
            p.drawEllipse(box.left() + 8, box.center().y() - 3, 7, 7)
            p.setPen(QColor("white"))
            p.drawText(box.adjusted(14, 0, 0, 0), Qt.AlignmentFlag.AlignCenter, self.overlay)


class PreviewView(QWidget):
    """Canvas + transport over the Timeline. Shows the timeline at the playhead; while a job of
    the JobQueue runs, its newest frame (show_live_frame) until the user seeks or plays."""

    frame_shown = Signal(str, int)  # "live" | "timeline", frame index
    files_dropped = Signal(list)  # local paths

    def __init__(self, timeline: Timeline, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline, self.jobs = timeline, jobs
        self.live_job: int | None = None
        self.canvas = PreviewCanvas(self)
        self.canvas.files_dropped.connect(self.files_dropped)
        self.play_timer = QTimer(self)
        self.play_timer.setObjectName("playback")
        self.play_timer.timeout.connect(self._tick)

        self.start_button = self._button(
            "SP_MediaSkipBackward", "Go to start (Home)", lambda: self.timeline.set_playhead(0)
        )
        self.prev_button = self._button(
            "SP_MediaSeekBackward", "Previous frame (Left)", lambda: self.step(-1)
        )
        self.play_button = self._button("SP_MediaPlay", "Play / pause (Space)", self.toggle_play)
        self.next_button = self._button(
            "SP_MediaSeekForward", "Next frame (Right)", lambda: self.step(1)
        )
        self.end_button = self._button(
            "SP_MediaSkipForward",
            "Go to end (End)",
            lambda: self.timeline.set_playhead(self.timeline.duration),
        )
        self.counter = QLabel("0 / 0")
        self.counter.setObjectName("dim")
        self.counter.setMinimumWidth(160)
        self.counter.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        controls = QHBoxLayout()
        controls.setContentsMargins(8, 4, 8, 4)
        for b in (
            self.start_button,
            self.prev_button,
            self.play_button,
            self.next_button,
            self.end_button,
        ):
            controls.addWidget(b)
        controls.addStretch(1)
        controls.addWidget(self.counter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(controls)

        self.timeline.events.playhead.connect(self._on_playhead)
        self.timeline.events.changed.connect(self._on_changed)
        self._show_timeline_frame()

    def _icon(self, name: str) -> QIcon:
        return self.style().standardIcon(getattr(QStyle.StandardPixmap, name))

    def _button(self, icon: str, tip: str, slot) -> QToolButton:
        b = QToolButton(self)
        b.setIcon(self._icon(icon))
        b.setToolTip(tip)
        b.setMinimumWidth(36)
        b.clicked.connect(slot)
        return b

    # ---- transport -------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self.play_timer.isActive()

    def toggle_play(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        if self.timeline.duration < 2:
            return
        self.live_job = None
        if self.timeline.playhead >= self.timeline.duration - 1:
            self.timeline.set_playhead(0)
        self.play_timer.start(max(1, round(1000 / max(self.timeline.fps, 1))))
        self.play_button.setIcon(self._icon("SP_MediaPause"))
        self._show_timeline_frame()

    def pause(self) -> None:
        self.play_timer.stop()
        self.play_button.setIcon(self._icon("SP_MediaPlay"))

    def step(self, delta: int) -> None:
        self.pause()
        self.live_job = None
        self.timeline.set_playhead(self.timeline.playhead + delta)
        self._show_timeline_frame()

    def _tick(self) -> None:
        if self.timeline.playhead >= self.timeline.duration - 1:
            self.timeline.set_playhead(0)  # loop
        else:
            self.timeline.set_playhead(self.timeline.playhead + 1)

    # ---- sources ---------------------------------------------------------------------------------
    def _on_playhead(self, _frame: int) -> None:
        if self.live_job is None:
            self._show_timeline_frame()

    def _on_changed(self) -> None:
        if self.timeline.duration < 2:
            self.pause()
        if self.live_job is None:
            self._show_timeline_frame()

    def _show_timeline_frame(self) -> None:
        t = self.timeline
        frame = t.frame(t.playhead)
        if frame is None:
            self.canvas.show_image(None)
            self.counter.setText("0 / 0")
            return
        self.canvas.show_image(to_qimage(frame))
        seconds = t.playhead / max(t.fps, 1)
        self.counter.setText(
            f"{int(seconds // 60):02d}:{seconds % 60:05.2f}   frame {t.playhead + 1} / {t.duration}"
        )
        self.frame_shown.emit("timeline", t.playhead)

    def show_live_frame(self, job_id: int, index: int, image: QImage) -> None:
        """A frame of a running job, as it arrives (unless the user is playing the timeline)."""
        if self.live_job != job_id:
            if self.live_job is None and self.playing:
                return  # the user is watching the timeline; the job shows on the timeline strip
            self.live_job = job_id
        job = self.jobs.get(job_id)
        total = job.total if job is not None else 0
        fps = f"  ·  {job.fps:.1f} fps" if job is not None and job.fps else ""
        self.canvas.show_image(image, f"LIVE  job #{job_id}  frame {index + 1} / {total}{fps}")
        self.counter.setText(f"generating: frame {index + 1} / {total}{fps}")
        self.frame_shown.emit("live", index)

    def end_live(self, _clip_id: str = "") -> None:
        """The job landed: back to the timeline at the playhead."""
        self.live_job = None
        self._show_timeline_frame()

    def shutdown(self) -> None:
        self.pause()
