"""The preview: the frame under the playhead (or the running job's newest frame, or the start image
being prepared), transport controls, a frame counter counting from 0 like the ruler and the
inspector, J/K/L shuttle, loop, zoom (fit / 1:1) and fullscreen. Accepts dropped files.

The playback actions (`PreviewView.actions`) carry window-wide shortcuts: they work wherever the
user clicked last except in a text field, which keeps its keys (Space types a space there)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QStyle, QToolButton, QVBoxLayout, QWidget

from ..images import to_qimage
from ..state.draft import Draft
from ..state.jobs import JobQueue
from ..state.timeline import Timeline
from .canvas import FIT, FullscreenPreview, PreviewCanvas

log = logging.getLogger(__name__)

SHUTTLE_SPEEDS = (1, 2, 4, 8)  # J / L pressed again: faster, as editors do
MAX_TICKS = 60  # playback repaints per second at most


class PreviewView(QWidget):
    """Canvas + transport over the Timeline. Shows the timeline at the playhead; while a job of
    the JobQueue runs, its newest frame (show_live_frame) until the user seeks or plays; after a
    start image is opened into the Draft, that image until the user seeks or plays."""

    frame_shown = Signal(str, int)  # "live" | "timeline" | "start", frame index
    files_dropped = Signal(list)  # local paths
    export_frame_requested = Signal()

    def __init__(
        self,
        timeline: Timeline,
        jobs: JobQueue,
        draft: Draft | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.timeline, self.jobs, self.draft = timeline, jobs, draft
        self.live_job: int | None = None
        self.showing_start = False  # the draft's start image, until the user seeks or plays
        self.rate = 1  # speed and direction (J/L shuttle): 1 = forwards at the timeline's fps
        self.frames_per_tick = 1
        self.loop = True
        self.fullscreen: FullscreenPreview | None = None
        self.canvas = PreviewCanvas(self)
        self.canvas.files_dropped.connect(self.files_dropped)
        self.canvas.menu_requested.connect(self.show_menu)
        self.canvas.double_clicked.connect(self.toggle_fullscreen)
        self.play_timer = QTimer(self)
        self.play_timer.setObjectName("playback")
        self.play_timer.timeout.connect(self._tick)
        self.actions = self._make_actions()
        self.addActions(self.action_list())

        a = self.actions
        self.start_button = self._button("SP_MediaSkipBackward", a.start)
        self.prev_button = self._button("SP_MediaSeekBackward", a.prev)
        self.play_button = self._button("SP_MediaPlay", a.play)
        self.next_button = self._button("SP_MediaSeekForward", a.next)
        self.end_button = self._button("SP_MediaSkipForward", a.end)
        self.loop_button = self._button("SP_BrowserReload", a.loop)
        self.zoom_button = self._button("SP_TitleBarNormalButton", a.actual_size)
        self.zoom_button.setText("1:1")
        self.zoom_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.fullscreen_button = self._button("SP_TitleBarMaxButton", a.fullscreen)
        self.fullscreen_button.setText("Fullscreen")
        self.fullscreen_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.counter = QLabel("no frames")
        self.counter.setObjectName("dim")
        self.counter.setMinimumWidth(160)
        self.counter.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.counter.setToolTip("Time and frame under the playhead, counted from 0 as on the ruler")

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
        controls.addSpacing(12)
        controls.addWidget(self.loop_button)
        controls.addWidget(self.zoom_button)
        controls.addWidget(self.fullscreen_button)
        controls.addStretch(1)
        controls.addWidget(self.counter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(controls)

        self.timeline.events.playhead.connect(self._on_playhead)
        self.timeline.events.changed.connect(self._on_changed)
        if draft is not None:
            draft.events.changed.connect(self._on_draft)
        self._show_timeline_frame()

    # ---- actions ---------------------------------------------------------------------------------
    def _action(self, text: str, slot, keys: tuple[str, ...] = (), tip: str = "") -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        shown = f" ({', '.join(keys)})" if keys else ""
        action.setToolTip(f"{tip or text}{shown}")
        action.setStatusTip(tip or text)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _make_actions(self) -> SimpleNamespace:
        a = SimpleNamespace()
        a.play = self._action("&Play / pause", self.toggle_play, ("Space",), "Play or pause")
        a.prev = self._action("Previous frame", lambda: self.step(-1), ("Left",))
        a.next = self._action("Next frame", lambda: self.step(1), ("Right",))
        a.start = self._action("Go to start", lambda: self.seek(0), ("Home",))
        a.end = self._action("Go to end", lambda: self.seek(self.timeline.duration - 1), ("End",))
        a.back = self._action(
            "Play backwards (J, again: faster)", lambda: self.shuttle(-1), ("J",), "Play backwards"
        )
        a.stop = self._action("Pause (K)", self.pause, ("K",), "Pause")
        a.forward = self._action(
            "Play forwards (L, again: faster)", lambda: self.shuttle(1), ("L",), "Play forwards"
        )
        a.loop = self._action("&Loop playback", lambda: None, ("Ctrl+L",), "Loop at the end")
        a.loop.setCheckable(True)
        a.loop.setChecked(self.loop)
        a.loop.toggled.connect(self.set_loop)
        a.fit = self._action("Zoom to &fit", lambda: self.set_zoom(FIT), ("Ctrl+0",))
        a.actual_size = self._action(
            "&Actual size (1:1)", self.toggle_actual_size, ("Ctrl+1",), "Actual size 1:1 / fit"
        )
        a.fullscreen = self._action(
            "F&ullscreen preview", self.toggle_fullscreen, ("F11",), "Fullscreen preview"
        )
        a.copy = self._action("&Copy frame", self.copy_frame, (), "Copy the shown frame")
        a.export = self._action(
            "E&xport frame to PNG…", self.export_frame_requested.emit, (), "Export this frame"
        )
        return a

    def action_list(self) -> list[QAction]:
        """The actions with keys: added to this view and to the fullscreen window."""
        a = self.actions
        return [
            a.play,
            a.prev,
            a.next,
            a.start,
            a.end,
            a.back,
            a.stop,
            a.forward,
            a.loop,
            a.fit,
            a.actual_size,
            a.fullscreen,
        ]

    def _icon(self, name: str) -> QIcon:
        return self.style().standardIcon(getattr(QStyle.StandardPixmap, name))

    def _button(self, icon: str, action: QAction) -> QToolButton:
        b = QToolButton(self)
        b.setDefaultAction(action)
        b.setIcon(self._icon(icon))
        b.setMinimumWidth(36)
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        return b

    def show_menu(self, pos: QPoint) -> QMenu:
        """The preview's context menu (right click): playback, loop, zoom, fullscreen, frame."""
        a = self.actions
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for item in (
            a.play,
            a.prev,
            a.next,
            a.start,
            a.end,
            None,
            a.loop,
            a.fit,
            a.actual_size,
            a.fullscreen,
            None,
            a.copy,
            a.export,
        ):
            menu.addSeparator() if item is None else menu.addAction(item)
        has_frame = self.canvas.image is not None
        a.copy.setEnabled(has_frame)
        a.export.setEnabled(self.timeline.duration > 0)
        menu.popup(pos)
        return menu

    # ---- transport -------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self.play_timer.isActive()

    def toggle_play(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def play(self, rate: int = 1) -> None:
        t = self.timeline
        if t.duration < 2:
            return
        self.live_job = None
        self.showing_start = False
        self.rate = rate
        if rate > 0 and t.playhead >= t.duration - 1:
            t.set_playhead(0)
        elif rate < 0 and t.playhead <= 0:
            t.set_playhead(t.duration - 1)
        frames_per_s = max(t.fps, 1) * abs(rate)
        ticks_per_s = min(frames_per_s, MAX_TICKS)  # faster: frames are skipped, not painted
        self.frames_per_tick = max(1, round(frames_per_s / ticks_per_s))
        self.play_timer.start(max(1, round(1000 / ticks_per_s)))
        self.play_button.setIcon(self._icon("SP_MediaPause"))
        self._show_timeline_frame()

    def shuttle(self, direction: int) -> None:
        """J (-1) / L (+1): play that way; pressed again while playing that way, faster."""
        speed = abs(self.rate) if self.playing and self.rate * direction > 0 else 0
        faster = next((s for s in SHUTTLE_SPEEDS if s > speed), SHUTTLE_SPEEDS[-1])
        self.play(direction * faster)

    def pause(self) -> None:
        self.play_timer.stop()
        self.rate = 1
        self.play_button.setIcon(self._icon("SP_MediaPlay"))

    def step(self, delta: int) -> None:
        self.seek(self.timeline.playhead + delta)

    def seek(self, frame: int) -> None:
        self.pause()
        self.live_job = None
        self.showing_start = False
        self.timeline.set_playhead(frame)
        self._show_timeline_frame()

    def set_loop(self, on: bool) -> None:
        self.loop = on
        if self.actions.loop.isChecked() != on:
            self.actions.loop.setChecked(on)

    def _tick(self) -> None:
        t = self.timeline
        last = t.duration - 1
        frame = t.playhead + (self.frames_per_tick if self.rate > 0 else -self.frames_per_tick)
        if 0 <= frame <= last:
            t.set_playhead(frame)
        elif self.loop:
            t.set_playhead(0 if self.rate > 0 else last)
        else:
            self.pause()

    # ---- zoom and fullscreen ---------------------------------------------------------------------
    def set_zoom(self, zoom: int) -> None:
        self.canvas.set_zoom(zoom)
        if self.fullscreen is not None:
            self.fullscreen.canvas.set_zoom(zoom)
        self.zoom_button.setText("Fit" if zoom != FIT else "1:1")

    def toggle_actual_size(self) -> None:
        self.set_zoom(FIT if self.canvas.zoom != FIT else 1)

    def toggle_fullscreen(self) -> None:
        if self.fullscreen is not None:
            self.fullscreen.close()
            return
        self.fullscreen = FullscreenPreview(self.action_list())
        self.fullscreen.canvas.files_dropped.connect(self.files_dropped)
        self.fullscreen.canvas.menu_requested.connect(self.show_menu)
        self.fullscreen.closed.connect(self._fullscreen_closed)
        self.fullscreen.canvas.set_zoom(self.canvas.zoom)
        c = self.canvas
        self.fullscreen.canvas.show_image(c.image, c.overlay, c.live)
        screen = self.screen() or QGuiApplication.primaryScreen()
        self.fullscreen.setGeometry(screen.geometry())
        self.fullscreen.showFullScreen()
        self.fullscreen.activateWindow()

    def _fullscreen_closed(self) -> None:
        self.fullscreen = None
        self.window().activateWindow()

    def copy_frame(self) -> None:
        if self.canvas.image is not None:
            QGuiApplication.clipboard().setImage(self.canvas.image)

    # ---- sources ---------------------------------------------------------------------------------
    def _show(self, image: QImage | None, overlay: str = "", live: bool = False) -> None:
        self.canvas.show_image(image, overlay, live)
        if self.fullscreen is not None:
            self.fullscreen.canvas.show_image(image, overlay, live)

    def _on_playhead(self, _frame: int) -> None:
        if self.live_job is None and not self.showing_start:
            self._show_timeline_frame()

    def _on_changed(self) -> None:
        if self.timeline.duration < 2:
            self.pause()
        if self.live_job is None and not self.showing_start:
            self._show_timeline_frame()

    def _on_draft(self, name: str) -> None:
        if name not in ("image", "mode") or self.draft is None:
            return
        was = self.showing_start
        # a new start image, or back to Image to video with one: show it; another mode: hide it
        self.showing_start = self.draft.image is not None and self.draft.mode == "i2v"
        if self.live_job is not None or self.playing:
            return
        if self.showing_start:
            self._show_start_image()
        elif was:
            self._show_timeline_frame()

    def _show_start_image(self) -> None:
        source = self.draft.image
        h, w = source.image.shape[:2]
        self._show(to_qimage(source.image), f"START IMAGE  {source.name}")
        self.counter.setText(f"start image: {source.name} ({w} x {h})")
        self.frame_shown.emit("start", 0)

    def _show_timeline_frame(self) -> None:
        t = self.timeline
        frame = t.frame(t.playhead)
        if frame is None:
            self._show(None)
            self.counter.setText("no frames")
            return
        self._show(to_qimage(frame))
        seconds = t.playhead / max(t.fps, 1)
        self.counter.setText(
            f"{int(seconds // 60):02d}:{seconds % 60:05.2f}   frame {t.playhead} of 0–{t.duration - 1}"
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
        number = job.number if job is not None else job_id  # the number the Jobs panel shows
        frames = f"frame {index} of 0–{max(total - 1, 0)}"  # from 0, as the ruler counts
        self._show(image, f"LIVE  job #{number}  {frames}{fps}", live=True)
        self.counter.setText(f"generating: {frames}{fps}")
        self.frame_shown.emit("live", index)

    def end_live(self, _clip_id: str = "") -> None:
        """The job landed: back to the timeline at the playhead."""
        self.live_job = None
        self.showing_start = False
        self._show_timeline_frame()

    def shutdown(self) -> None:
        self.pause()
        if self.fullscreen is not None:
            self.fullscreen.close()
