"""The timeline: clips as thumbnail strips on one track, a ruler and a playhead; zoom and
horizontal scrolling. Click to select and seek, drag a clip to move it, drag its edges to trim,
right-click for a clip's (or the empty track's) menu. The running job is drawn as a growing
ghost clip where its clip will land (after its source clip for an edit or extend, else at the
end); the clips after that point make room for it; a new take streams over its clip. The view
follows the ghost and new clips."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QContextMenuEvent,
    QFont,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import theme
from ..images import to_qimage
from ..state.jobs import JobQueue, JobState
from ..state.timeline import Clip, Timeline
from .drops import FileDropMixin

PAD = 12  # left margin, px
RULER_H = 24
TRACK_TOP = 32
TRACK_H = 68
THUMB_H = TRACK_H - 22  # thumbnails above a label strip
EDGE = 6  # px around a clip edge that grabs for trimming
ZOOM_MIN, ZOOM_MAX = 0.5, 64.0
MAJOR_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class TimelineCanvas(FileDropMixin, QWidget):
    """Paints the Timeline and the running job of the JobQueue; selects on the Timeline itself
    and asks for seeks and undoable edits through its signals."""

    files_dropped = Signal(list)  # local paths
    seek_requested = Signal(int)  # timeline frame
    trim_requested = Signal(str, int, int)  # clip id, media frames [start, stop)
    move_requested = Signal(str, int)  # clip id, new index
    menu_requested = Signal(QPoint, str)  # global position, clip id ("" on the empty track)

    def __init__(self, timeline: Timeline, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline, self.jobs = timeline, jobs
        self.ppf = 12.0  # pixels per frame (zoom)
        self._thumbs: dict[tuple[str, int], QPixmap] = {}
        self._drag: dict | None = None
        self.setAcceptDrops(True)
        self.setMouseTracking(True)
        self.setFixedHeight(TRACK_TOP + TRACK_H + 14)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

    # ---- geometry --------------------------------------------------------------------------------
    def x_of(self, frame: float) -> float:
        """x of a frame on the drawn track (the ruler's frames: the ghost's room included)."""
        return PAD + frame * self.ppf

    def frame_at(self, x: float) -> int:
        """The ruler's frame at x."""
        return int(math.floor((x - PAD) / self.ppf))

    def tx(self, frame: float) -> float:
        """x of timeline frame `frame` (frames from the ghost's start on sit after it)."""
        ghost = self.ghost()
        if ghost is not None and frame >= ghost[0]:
            frame += self.ghost_room()
        return self.x_of(frame)

    def timeline_frame_at(self, x: float) -> int:
        """The timeline frame drawn at x (the ghost's start for x on the ghost)."""
        frame = self.frame_at(x)
        ghost, room = self.ghost(), self.ghost_room()
        if ghost is not None and room and frame >= ghost[0]:
            frame = max(ghost[0], frame - room)
        return frame

    def clip_rect(self, clip: Clip) -> QRectF:
        x = self.tx(self.timeline.offset(clip.id))
        return QRectF(x, TRACK_TOP, clip.length * self.ppf, TRACK_H)

    def clip_at(self, x: float, y: float) -> Clip | None:
        if not TRACK_TOP <= y <= TRACK_TOP + TRACK_H or self.on_ghost(x):
            return None
        hit = self.timeline.locate(self.timeline_frame_at(x))
        return None if hit is None else hit[0]

    def ghost(self) -> tuple[int, int] | None:
        """(timeline frame where the running job's clip lands, its length) or None; a take of a
        clip on the timeline streams over that clip."""
        job = self.jobs.running()
        if job is None:
            return None
        into = self.timeline.clip(job.into)
        after = self.timeline.clip(job.after)
        if into is not None:
            start = self.timeline.offset(into.id)
        elif after is not None:
            start = self.timeline.offset(after.id) + after.length
        else:
            start = self.timeline.duration
        return start, max(job.total, job.received, 1)

    def ghost_rect(self) -> QRectF | None:
        ghost = self.ghost()
        if ghost is None:
            return None
        return QRectF(self.x_of(ghost[0]) + 2, TRACK_TOP, ghost[1] * self.ppf - 2, TRACK_H)

    def on_ghost(self, x: float) -> bool:
        rect = self.ghost_rect()
        return rect is not None and rect.left() - 2 <= x < rect.right()

    def ghost_frames(self) -> int:
        ghost = self.ghost()
        return 0 if ghost is None else ghost[1]

    def ghost_room(self) -> int:
        """Frames the clips after the ghost move right by: none for a take streaming over its
        clip."""
        job = self.jobs.running()
        if job is None or self.timeline.clip(job.into) is not None:
            return 0
        return self.ghost_frames()

    def content_width(self) -> int:
        end = max(self.timeline.duration + self.ghost_room(), sum(self.ghost() or (0, 0)))
        return int(self.x_of(end) + 240)

    def sizeHint(self) -> QSize:
        return QSize(self.content_width(), self.height())

    def relayout(self) -> None:
        self.setMinimumWidth(self.content_width())
        self.update()

    def set_zoom(self, ppf: float, anchor_x: float | None = None) -> None:
        old = self.ppf
        self.ppf = max(ZOOM_MIN, min(ZOOM_MAX, ppf))
        self.relayout()
        scroll = self._scroll_area()
        if scroll is not None and anchor_x is not None:
            frame = (anchor_x - PAD) / old
            bar = scroll.horizontalScrollBar()
            view_x = anchor_x - bar.value()
            bar.setValue(int(self.x_of(frame) - view_x))

    def _scroll_area(self) -> QScrollArea | None:
        w = self.parent()
        while w is not None and not isinstance(w, QScrollArea):
            w = w.parent()
        return w

    # ---- thumbnails ------------------------------------------------------------------------------
    def thumb(self, media_id: str, index: int, frame: np.ndarray | None = None) -> QPixmap:
        key = (media_id, index)
        pm = self._thumbs.get(key)
        if pm is None:
            if frame is None:
                frame = self.timeline.media[media_id].frames[index]
            image = to_qimage(frame)
            mode = (
                Qt.TransformationMode.FastTransformation
                if image.height() < THUMB_H
                else Qt.TransformationMode.SmoothTransformation
            )
            pm = QPixmap.fromImage(image.scaledToHeight(THUMB_H, mode))
            if len(self._thumbs) > 4000:
                self._thumbs.clear()
            self._thumbs[key] = pm
        return pm

    # ---- painting --------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.BG))
        p.fillRect(QRectF(0, TRACK_TOP - 4, self.width(), TRACK_H + 8), QColor("#202226"))
        self._paint_ruler(p, event.rect())
        for clip in self.timeline.clips:
            rect = self.clip_rect(clip)
            if rect.right() >= event.rect().left() - 2 and rect.left() <= event.rect().right() + 2:
                self._paint_clip(p, clip, rect)
        self._paint_ghost(p)
        self._paint_drag(p)
        self._paint_playhead(p)
        if not self.timeline.clips and not self.ghost_frames():
            p.setPen(QColor(theme.DIM))
            p.drawText(
                QRectF(PAD, TRACK_TOP, 520, TRACK_H),
                Qt.AlignmentFlag.AlignVCenter,
                "Generated clips land here. Drop images or videos to start from them.",
            )

    def _paint_ruler(self, p: QPainter, area) -> None:
        p.fillRect(QRectF(0, 0, self.width(), RULER_H), QColor(theme.PANEL))
        p.setPen(QColor(theme.BORDER))
        p.drawLine(0, RULER_H, self.width(), RULER_H)
        step = next((s for s in MAJOR_STEPS if s * self.ppf >= 64), MAJOR_STEPS[-1])
        first = max(0, self.frame_at(area.left()) // step * step)
        last = self.frame_at(area.right()) + 1
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() - 2))
        p.setFont(font)
        fps = max(self.timeline.fps, 1)
        if self.ppf >= 5:
            p.setPen(QColor("#3b3e44"))
            for f in range(max(0, self.frame_at(area.left())), last):
                x = self.x_of(f)
                p.drawLine(QPointF(x, RULER_H - 4), QPointF(x, RULER_H))
        for f in range(first, last + step, step):
            x = self.x_of(f)
            p.setPen(QColor(theme.DIM))
            p.drawLine(QPointF(x, RULER_H - 10), QPointF(x, RULER_H))
            p.drawText(QPointF(x + 3, RULER_H - 11), f"{f}  {f / fps:.2f}s")

    def _paint_clip(self, p: QPainter, clip: Clip, rect: QRectF) -> None:
        selected = clip.id == self.timeline.selected
        path = QPainterPath()
        path.addRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)
        p.save()
        p.setClipPath(path)
        p.fillRect(rect, QColor(theme.RAISED))
        media = self.timeline.media[clip.media]
        tw = max(1, self.thumb(clip.media, clip.start).width())
        count = math.ceil(rect.width() / tw)
        for k in range(count):
            local = min(clip.length - 1, int(k * tw / self.ppf))
            x = rect.left() + k * tw
            p.drawPixmap(QPointF(x, rect.top()), self.thumb(media.id, clip.start + local))
        label = QRectF(rect.left(), rect.top() + THUMB_H, rect.width(), TRACK_H - THUMB_H)
        colour = {"generated": "#2c3d5c", "video": "#3d3552", "image": "#2f4a3a"}.get(
            media.kind, theme.RAISED
        )
        if clip.request is not None and "(partial" in clip.name:
            colour = "#4a3a22"
        p.fillRect(label, QColor(colour))
        p.setPen(QColor(theme.TEXT))
        takes = len(clip.takes)
        take = f"take {clip.take_index + 1}/{takes}  ·  " if takes > 1 else ""
        text = p.fontMetrics().elidedText(
            f"{take}{clip.name}  ·  {clip.length}f",
            Qt.TextElideMode.ElideRight,
            int(label.width()) - 10,
        )
        p.drawText(label.adjusted(6, 0, -4, 0), Qt.AlignmentFlag.AlignVCenter, text)
        p.restore()
        p.setPen(QPen(QColor(theme.ACCENT if selected else theme.BORDER), 2 if selected else 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)
        if selected and rect.width() > 3 * EDGE:
            p.setBrush(QColor(theme.ACCENT))
            p.setPen(Qt.PenStyle.NoPen)
            for x in (rect.left() + 1, rect.right() - 4):
                p.drawRoundedRect(QRectF(x, rect.top() + TRACK_H / 2 - 10, 3, 20), 1.5, 1.5)

    def _paint_ghost(self, p: QPainter) -> None:
        job, rect = self.jobs.running(), self.ghost_rect()
        if job is None or rect is None:
            return
        total = max(job.total, job.received, 1)
        p.save()
        p.setClipRect(rect)
        p.fillRect(rect, QBrush(QColor("#26334a"), Qt.BrushStyle.BDiagPattern))
        frames = [f for batch in job.frames for f in batch]
        if frames:
            tw = max(1, self.thumb(f"job{job.id}", 0, frames[0]).width())
            for k in range(math.ceil(rect.width() / tw)):
                local = int(k * tw / self.ppf)
                if local >= len(frames):
                    break
                p.drawPixmap(
                    QPointF(rect.left() + k * tw, rect.top()),
                    self.thumb(f"job{job.id}", local, frames[local]),
                )
        label = QRectF(rect.left(), rect.top() + THUMB_H, rect.width(), TRACK_H - THUMB_H)
        p.fillRect(label, QColor(30, 40, 60, 220))
        done = job.received
        p.fillRect(
            QRectF(label.left(), label.bottom() - 3, label.width() * done / total, 3),
            QColor(theme.ACCENT),
        )
        p.setPen(QColor(theme.TEXT))
        text = p.fontMetrics().elidedText(
            f"generating {done}/{total}  ·  {job.title}",
            Qt.TextElideMode.ElideRight,
            int(label.width()) - 10,
        )
        p.drawText(label.adjusted(6, 0, -4, -2), Qt.AlignmentFlag.AlignVCenter, text)
        p.restore()
        p.setPen(QPen(QColor(theme.ACCENT), 1, Qt.PenStyle.DashLine))
        p.setBrush(Qt.BrushStyle.NoBrush)  # an outline only, whatever the last clip filled with
        p.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)

    def _paint_drag(self, p: QPainter) -> None:
        d = self._drag
        if d is None or d["mode"] not in ("move", "trim"):
            return
        p.setPen(QPen(QColor(theme.ACCENT), 2))
        if d["mode"] == "move" and d.get("moving"):
            x = self.tx(self._insertion_frame(d["x"]))
            p.drawLine(QPointF(x, TRACK_TOP - 6), QPointF(x, TRACK_TOP + TRACK_H + 6))
        elif d["mode"] == "trim":
            start, stop = self._trim_range(d)
            clip = self.timeline.clip(d["clip"])
            if clip is not None:
                x0 = self.tx(self.timeline.offset(clip.id)) + (start - clip.start) * self.ppf
                p.fillRect(
                    QRectF(x0, TRACK_TOP, (stop - start) * self.ppf, TRACK_H),
                    QColor(79, 140, 255, 50),
                )
                p.drawRect(QRectF(x0, TRACK_TOP, (stop - start) * self.ppf, TRACK_H))

    def _paint_playhead(self, p: QPainter) -> None:
        if self.timeline.duration == 0:
            return
        x = self.tx(self.timeline.playhead) + 0.5 * self.ppf
        p.setPen(QPen(QColor(theme.PLAYHEAD), 2))
        p.drawLine(QPointF(x, RULER_H - 2), QPointF(x, self.height()))
        p.setBrush(QColor(theme.PLAYHEAD))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawPolygon(QPolygonF([QPointF(x - 6, 4), QPointF(x + 6, 4), QPointF(x, RULER_H - 2)]))

    # ---- interaction -----------------------------------------------------------------------------
    def _edge_hit(self, x: float, y: float) -> tuple[Clip, str] | None:
        if not TRACK_TOP <= y <= TRACK_TOP + TRACK_H:
            return None
        for clip in self.timeline.clips:
            r = self.clip_rect(clip)
            if r.width() < 3 * EDGE:
                continue
            if abs(x - r.left()) <= EDGE:
                return clip, "start"
            if abs(x - r.right()) <= EDGE:
                return clip, "end"
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        x, y = event.position().x(), event.position().y()
        edge = self._edge_hit(x, y)
        if edge is not None:
            clip, side = edge
            self.timeline.select(clip.id)
            self._drag = {"mode": "trim", "clip": clip.id, "side": side, "x0": x, "x": x}
            return
        clip = self.clip_at(x, y)
        self.timeline.select(clip.id if clip else None)
        self.seek_requested.emit(self.timeline_frame_at(x))
        self._drag = {
            "mode": "move" if clip else "scrub",
            "clip": clip.id if clip else None,
            "x0": x,
            "x": x,
        }

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        x, y = event.position().x(), event.position().y()
        d = self._drag
        if d is None:
            cursor = (
                Qt.CursorShape.SizeHorCursor if self._edge_hit(x, y) else Qt.CursorShape.ArrowCursor
            )
            self.setCursor(cursor)
            return
        d["x"] = x
        if d["mode"] == "scrub":
            self.seek_requested.emit(self.timeline_frame_at(x))
        elif d["mode"] == "move" and abs(x - d["x0"]) > 6:
            d["moving"] = True
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        d, self._drag = self._drag, None
        if d is None:
            return
        if d["mode"] == "trim":
            start, stop = self._trim_range(d)
            self.trim_requested.emit(d["clip"], start, stop)
        elif d["mode"] == "move" and d.get("moving"):
            self.move_requested.emit(d["clip"], self._insertion_index(d["clip"], d["x"]))
        self.update()

    def _trim_range(self, d: dict) -> tuple[int, int]:
        clip = self.timeline.clip(d["clip"])
        delta = round((d["x"] - d["x0"]) / self.ppf)
        n = len(self.timeline.media[clip.media])
        if d["side"] == "start":
            return max(0, min(clip.start + delta, clip.stop - 1)), clip.stop
        return clip.start, max(clip.start + 1, min(clip.stop + delta, n))

    def _insertion_index(self, clip_id: str, x: float) -> int:
        """Where a clip dropped at x goes: before the first other clip whose middle is right of x."""
        others = [c for c in self.timeline.clips if c.id != clip_id]
        pos = 0.0
        for i, c in enumerate(others):
            if x < self.tx(pos) + c.length / 2 * self.ppf:
                return i
            pos += c.length
        return len(others)

    def _insertion_frame(self, x: float) -> int:
        d = self._drag
        others = [c for c in self.timeline.clips if c.id != d["clip"]]
        index = self._insertion_index(d["clip"], x)
        return sum(c.length for c in others[:index])

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """Right-click: a clip's menu (the clip is selected first) or the empty track's."""
        self._drag = None
        clip = self.clip_at(event.pos().x(), event.pos().y())
        if clip is not None:
            self.timeline.select(clip.id)
        self.menu_requested.emit(event.globalPos(), clip.id if clip else "")
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.angleDelta().x()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.ppf * (1.25 if delta > 0 else 0.8), event.position().x())
            event.accept()
            return
        scroll = self._scroll_area()
        if scroll is not None:
            bar = scroll.horizontalScrollBar()
            bar.setValue(bar.value() - delta)
            event.accept()


class TimelineView(FileDropMixin, QFrame):
    """Toolbar (zoom) + scrollable canvas; `show_live_frame` repaints the growing job strip and
    keeps it in view. Right-click menus show `clip_actions` / `empty_actions` (see
    `set_context_actions`) and the clip's takes."""

    files_dropped = Signal(list)  # local paths
    seek_requested = Signal(int)
    trim_requested = Signal(str, int, int)
    move_requested = Signal(str, int)
    take_requested = Signal(str, int)  # clip id, take index to show
    compare_requested = Signal(str)  # clip id: compare two of its takes
    paste_requested = Signal(str, int)  # copied clip id, index to insert its copy at
    export_requested = Signal(str)  # clip id

    def __init__(self, timeline: Timeline, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline, self.jobs = timeline, jobs
        self.clip_actions: list[QAction | None] = []  # None: a separator
        self.empty_actions: list[QAction | None] = []
        self.copied: str | None = None  # the clip id Copy keeps for Paste
        self.menu: QMenu | None = None  # the open context menu
        self._clip_ids: set[str] = set()
        self.wired = False  # its take / paste / export requests reach the studio (timeline_menu)
        self.setAcceptDrops(True)
        self.canvas = TimelineCanvas(timeline, jobs)
        self.canvas.files_dropped.connect(self.files_dropped)
        self.canvas.seek_requested.connect(self.seek_requested)
        self.canvas.trim_requested.connect(self.trim_requested)
        self.canvas.move_requested.connect(self.move_requested)
        self.canvas.menu_requested.connect(self.show_menu)
        self.scroll = QScrollArea(self)
        self.scroll.setWidget(self.canvas)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setMinimumHeight(self.canvas.height() + 16)

        self.zoom_out = QToolButton(text="−", toolTip="Zoom out (Ctrl+wheel)")
        self.zoom_in = QToolButton(text="+", toolTip="Zoom in (Ctrl+wheel)")
        self.zoom_fit = QToolButton(text="Fit", toolTip="Fit the whole timeline")
        self.zoom_out.clicked.connect(lambda: self.canvas.set_zoom(self.canvas.ppf / 1.5))
        self.zoom_in.clicked.connect(lambda: self.canvas.set_zoom(self.canvas.ppf * 1.5))
        self.zoom_fit.clicked.connect(self.fit)
        self.summary = QLabel()
        self.summary.setObjectName("dim")
        bar = QHBoxLayout()
        bar.setContentsMargins(8, 4, 8, 0)
        bar.addWidget(self.summary)
        bar.addStretch(1)
        for b in (self.zoom_out, self.zoom_in, self.zoom_fit):
            bar.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.scroll)

        timeline.events.changed.connect(self._on_changed)
        timeline.events.selection.connect(lambda _id: self.canvas.update())
        timeline.events.playhead.connect(self._on_playhead)
        jobs.events.changed.connect(self.canvas.relayout)
        jobs.events.updated.connect(self._on_job)
        self._on_changed()

    def show_live_frame(self, _job_id: int = 0, index: int = 0, *_image) -> None:
        """A frame of the running job arrived: repaint its strip and keep that frame in view."""
        self.canvas.update()
        ghost = self.canvas.ghost()
        if ghost is not None:
            self.reveal(ghost[0] + ghost[1] if index == 0 else ghost[0] + index + 1, ghost[0])

    def reveal(self, last: float, first: float) -> None:
        """Scroll so that drawn frames [first, last) are in view (the end first), once the
        canvas has its new width."""

        def scroll() -> None:
            bar, c = self.scroll.horizontalScrollBar(), self.canvas
            if c.width() < c.minimumWidth():  # its layout request is still pending
                c.resize(c.minimumWidth(), c.height())
            right = c.x_of(last) + 24 - self.scroll.viewport().width()
            left = c.x_of(first) - PAD
            if bar.value() < right:
                bar.setValue(int(min(right, left)))
            elif bar.value() > left:
                bar.setValue(int(left))

        QTimer.singleShot(0, self, scroll)

    def fit(self) -> None:
        """Zoom so that the whole timeline (and the running job) fits, scrolled to the start."""
        frames = max(self.timeline.duration + self.canvas.ghost_frames(), 1)
        self.canvas.set_zoom((self.scroll.viewport().width() - 2 * PAD - 40) / frames)
        self.scroll.horizontalScrollBar().setValue(0)

    def set_context_actions(self, clip: list[QAction | None], empty: list[QAction | None]) -> None:
        """The actions of a clip's right-click menu and of the empty track's (None: separator)."""
        self.clip_actions, self.empty_actions = list(clip), list(empty)

    def show_menu(self, pos: QPoint, clip_id: str) -> QMenu:
        """The right-click menu at global `pos` for clip `clip_id` ("" for the empty track)."""
        from .timeline_menu import build_menu

        if self.menu is not None:
            self.menu.close()
        self.menu = build_menu(self, clip_id)
        self.menu.popup(pos)
        return self.menu

    def _on_changed(self) -> None:
        t = self.timeline
        self.summary.setText(
            f"{len(t.clips)} clip(s) · {t.duration} frames · {t.duration / max(t.fps, 1):.2f} s"
        )
        self.canvas.relayout()
        ids = {c.id for c in t.clips}
        new = ids - self._clip_ids
        if len(new) == 1 and self._clip_ids:  # one clip came (import, generation, undo, paste)
            clip = t.clip(next(iter(new)))
            start = self.canvas.tx(t.offset(clip.id))
            first = self.canvas.frame_at(start)
            self.reveal(first + clip.length, first)
        self._clip_ids = ids

    def _on_job(self, job) -> None:
        if job.state in (JobState.RUNNING, JobState.DONE, JobState.CANCELLED, JobState.FAILED):
            self.canvas.relayout()
        if job.state == JobState.RUNNING:
            ghost = self.canvas.ghost()
            if ghost is not None:
                self.reveal(ghost[0] + min(ghost[1], 8), ghost[0])

    def _on_playhead(self, frame: int) -> None:
        x = int(self.canvas.tx(frame) + 0.5 * self.canvas.ppf)
        self.scroll.ensureVisible(x, TRACK_TOP, 60, 0)
        self.canvas.update()
