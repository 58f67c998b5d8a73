"""The main window: preview (centre), timeline (bottom), inspector and job queue (right),
menus with the keyboard shortcuts, status bar. Each view gets the models it shows; this window
wires the views' requests and the studio's signals together. Every action calls a Studio method."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow, QVBoxLayout, QWidget

from .widgets.drops import FileDropMixin
from .widgets.inspector import InspectorView
from .widgets.job_queue import JobQueueView
from .widgets.messages import MessageArea
from .widgets.preview import PreviewView
from .widgets.status import StatusPanel
from .widgets.timeline_view import TimelineView

if TYPE_CHECKING:
    from .engine_settings import EngineSettingsDialog
    from .model_manager import ModelManagerDialog
    from .studio import Studio

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


class MainWindow(FileDropMixin, QMainWindow):
    files_dropped = Signal(list)  # local paths

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self._closed = False
        self.model_manager: ModelManagerDialog | None = None
        self.setWindowTitle("STARFlow Studio[*]")
        self.setMinimumSize(960, 640)
        self.resize(1400, 860)
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )
        if studio.dialogs.parent is None:
            studio.dialogs.parent = self

        self.preview = PreviewView(studio.timeline, studio.jobs)
        self.message_area = MessageArea(studio.messages)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.message_area)
        layout.addWidget(self.preview, 1)
        self.setCentralWidget(central)

        self.inspector = InspectorView(studio.draft, studio.timeline, studio.jobs)
        self.job_queue = JobQueueView(studio.jobs)
        self.timeline_view = TimelineView(studio.timeline, studio.jobs)
        self.inspector_dock = self._dock(
            "Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.jobs_dock = self._dock("Jobs", self.job_queue, Qt.DockWidgetArea.RightDockWidgetArea)
        self.timeline_dock = self._dock(
            "Timeline", self.timeline_view, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.resizeDocks([self.inspector_dock], [360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock, self.jobs_dock], [520, 200], Qt.Orientation.Vertical)
        self.resizeDocks([self.timeline_dock], [170], Qt.Orientation.Vertical)

        self.status = StatusPanel(self.statusBar(), studio.messages)
        self.actions_ = self._make_actions()
        self._make_menus()
        self._connect_views()
        self._update_title()
        self._restore_state()

    def _connect_views(self) -> None:
        """The studio's signals to the views, the views' requests to the studio."""
        s, ins, preview, tv = self.studio, self.inspector, self.preview, self.timeline_view
        s.model_loading.connect(self.status.show_loading)
        s.model_loaded.connect(self.status.show_model)
        s.model_failed.connect(self.status.show_failed)
        s.model_loaded.connect(ins.show_model)
        ins.show_model(s.info)
        s.model_loaded.connect(self._on_model)
        s.live_frame.connect(preview.show_live_frame)
        s.live_frame.connect(tv.show_live_frame)
        s.job_landed.connect(preview.end_live)
        s.seeked.connect(lambda _frame: preview.step(0))
        s.project_changed.connect(self._update_title)
        ins.generate_requested.connect(s.generate)
        ins.regenerate_requested.connect(lambda: s.regenerate())
        ins.extend_requested.connect(lambda: s.extend())
        ins.edit_requested.connect(lambda: s.edit())
        ins.cancel_requested.connect(s.cancel)
        ins.open_image_requested.connect(lambda: s.load_image(generate=False))
        self.job_queue.remove_requested.connect(s.remove_job)
        tv.seek_requested.connect(s.seek)
        tv.trim_requested.connect(s.trim)
        tv.move_requested.connect(s.move_clip)
        for view in (self, preview, tv):
            view.files_dropped.connect(s.open_files)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    # ---- actions ---------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _make_actions(self) -> SimpleNamespace:
        s, p = self.studio, self.preview
        K = QKeySequence.StandardKey
        a = SimpleNamespace()
        a.new = self._action("&New project", s.new_project, K.New)
        a.open = self._action("&Open project…", s.open_project, K.Open)
        a.save = self._action("&Save project", s.save, K.Save)
        a.save_as = self._action("Save project &as…", s.save_as, K.SaveAs)
        a.open_image = self._action(
            "Open &image (image to video)…", lambda: s.load_image(generate=False), "Ctrl+I"
        )
        a.import_video = self._action("Import &video…", s.import_video, "Ctrl+Shift+I")
        a.export = self._action("&Export timeline to MP4…", s.export_video, "Ctrl+E")
        a.export_clip = self._action(
            "Export selected &clip to MP4…",
            lambda: s.export_video(clip_id=s.timeline.selected),
            "Ctrl+Shift+E",
        )
        a.export_frame = self._action("Export &frame to PNG…", s.export_frame, "Ctrl+Alt+E")
        a.quit = self._action("&Quit", self.close, K.Quit)

        a.undo = s.undo.createUndoAction(self, "&Undo")
        a.undo.setShortcuts(QKeySequence.keyBindings(K.Undo))
        a.redo = s.undo.createRedoAction(self, "&Redo")
        a.redo.setShortcuts(QKeySequence.keyBindings(K.Redo))
        self.addActions([a.undo, a.redo])
        a.delete = self._action("&Delete clip", s.delete_selected, K.Delete)
        a.duplicate = self._action("D&uplicate clip", s.duplicate_selected, "Ctrl+D")
        a.rename = self._action("Re&name clip…", lambda: s.rename_selected(), "F2")
        a.split = self._action("&Split at playhead", s.split_at_playhead, "Ctrl+K")
        a.trim_start = self._action(
            "Trim clip &start to playhead", lambda: s.trim_to_playhead("start"), "["
        )
        a.trim_end = self._action(
            "Trim clip &end to playhead", lambda: s.trim_to_playhead("end"), "]"
        )
        a.move_left = self._action("Move clip &left", lambda: s.nudge_selected(-1), "Alt+Left")
        a.move_right = self._action("Move clip &right", lambda: s.nudge_selected(1), "Alt+Right")

        a.generate = self._action("&Generate", s.generate, ["Ctrl+Return", "Ctrl+Enter"])
        a.regenerate = self._action(
            "&Regenerate with another seed", lambda: s.regenerate(), "Ctrl+R"
        )
        a.extend = self._action("E&xtend clip", lambda: s.extend(), "Ctrl+Shift+X")
        a.edit = self._action("&Edit clip (video to video)", lambda: s.edit(), "Ctrl+Shift+V")
        a.cancel = self._action("&Cancel job", s.cancel, "Esc")

        a.play = self._action("&Play / pause", p.toggle_play, "Space")
        a.prev = self._action("Previous frame", lambda: p.step(-1), "Left")
        a.next = self._action("Next frame", lambda: p.step(1), "Right")
        a.start = self._action("Go to start", lambda: s.seek(0), "Home")
        a.end = self._action("Go to end", lambda: s.seek(s.timeline.duration), "End")

        a.open_model = self._action("&Open model file…", self._open_model)
        a.model_manager = self._action("STARFlow-V 7B &model manager…", self.open_model_manager)
        a.demo_model = self._action("Use the built-in &demo model", lambda: s.load_model(""))
        a.engine_settings = self._action("&Settings…", self.open_engine_settings)
        a.engine_settings.setMenuRole(QAction.MenuRole.NoRole)  # stays in Engine on macOS
        a.devices = self._choice_group(DEVICES, s.settings.device, lambda v: s.load_model(device=v))
        a.precisions = self._choice_group(
            PRECISIONS, s.settings.precision, lambda v: s.load_model(precision=v)
        )
        return a

    def _choice_group(self, values, current: str, choose) -> dict[str, QAction]:
        group = QActionGroup(self)
        actions = {}
        for v in values:
            action = QAction(v, self, checkable=True, checked=(v == current))
            action.triggered.connect(lambda _c=False, v=v: choose(v))
            group.addAction(action)
            actions[v] = action
        return actions

    def _make_menus(self) -> None:
        a, mb = self.actions_, self.menuBar()
        file = mb.addMenu("&File")
        for item in (
            a.new,
            a.open,
            "recent",
            a.save,
            a.save_as,
            None,
            a.open_image,
            a.import_video,
            None,
            a.export,
            a.export_clip,
            a.export_frame,
            None,
            a.quit,
        ):
            if item == "recent":
                self.recent_menu = file.addMenu("Open &recent")
                self.recent_menu.aboutToShow.connect(self.fill_recent_menu)
            else:
                file.addSeparator() if item is None else file.addAction(item)
        edit = mb.addMenu("&Edit")
        for item in (
            a.undo,
            a.redo,
            None,
            a.delete,
            a.duplicate,
            a.rename,
            a.split,
            a.trim_start,
            a.trim_end,
            a.move_left,
            a.move_right,
        ):
            edit.addSeparator() if item is None else edit.addAction(item)
        gen = mb.addMenu("&Generate")
        for item in (a.generate, a.regenerate, a.extend, a.edit, None, a.cancel):
            gen.addSeparator() if item is None else gen.addAction(item)
        play = mb.addMenu("&Playback")
        for item in (a.play, a.prev, a.next, a.start, a.end):
            play.addAction(item)
        engine = mb.addMenu("E&ngine")
        engine.addAction(a.model_manager)
        engine.addAction(a.open_model)
        engine.addAction(a.demo_model)
        devices = engine.addMenu("&Device")
        devices.addActions(list(a.devices.values()))
        precision = engine.addMenu("&Precision")
        precision.addActions(list(a.precisions.values()))
        engine.addSeparator()
        engine.addAction(a.engine_settings)
        view = mb.addMenu("&View")
        for dock in (self.inspector_dock, self.jobs_dock, self.timeline_dock):
            view.addAction(dock.toggleViewAction())

    def open_model_manager(self, manifest_path: Path | None = None) -> ModelManagerDialog:
        """The (modeless) model manager: local checkpoint or Hub download, then load."""
        from .model_manager import MANIFEST_PATH, ModelManagerDialog

        if self.model_manager is None or not self.model_manager.thread.isRunning():
            s = self.studio
            self.model_manager = ModelManagerDialog(
                s.settings, s.dialogs, manifest_path or MANIFEST_PATH, parent=self
            )
            self.model_manager.chosen.connect(s.load_model)
        self.model_manager.show()
        self.model_manager.raise_()
        return self.model_manager

    def open_engine_settings(self) -> EngineSettingsDialog:
        """Engine > Settings (window-modal): OK keeps the options, reloading a model file."""
        from .engine_settings import EngineSettingsDialog
        from .state.engine_presets import gpu_memory

        generation = self.studio.generation
        dialog = EngineSettingsDialog(self.studio.settings.engine_options, gpu_memory(), self)
        dialog.accepted.connect(lambda: generation.set_engine_options(dialog.options()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def _open_model(self) -> None:
        path = self.studio.dialogs.open_model(self.studio.settings.last_dir("model"))
        if path:
            self.studio.settings.set_last_dir("model", path)
            self.studio.load_model(path)

    # ---- state -----------------------------------------------------------------------------------
    def fill_recent_menu(self) -> None:
        """File > Open recent: the recent project folders (full path as tip), then Clear."""
        menu, s = self.recent_menu, self.studio
        menu.clear()
        folders = s.settings.recent_projects
        for i, folder in enumerate(folders, 1):
            action = menu.addAction(f"&{i} {folder.name.replace('&', '&&')}")  # a literal &
            action.setToolTip(str(folder))
            action.setStatusTip(str(folder))
            action.setData(str(folder))
            action.triggered.connect(lambda _=False, f=folder: s.open_project(f))
        if not folders:
            menu.addAction("No recent projects").setEnabled(False)
        menu.setToolTipsVisible(True)
        menu.addSeparator()
        clear = menu.addAction("Clear recent projects")
        clear.setEnabled(bool(folders))
        clear.triggered.connect(lambda: setattr(s.settings, "recent_projects", []))

    def _on_model(self, _info) -> None:
        s = self.studio.settings
        for v, action in self.actions_.devices.items():
            action.setChecked(v == s.device)
        for v, action in self.actions_.precisions.items():
            action.setChecked(v == s.precision)

    def _update_title(self) -> None:
        path = self.studio.project_path
        self.setWindowTitle(f"{path.name if path else 'Untitled'}[*] — STARFlow Studio")
        self.setWindowModified(self.studio.dirty)

    def _restore_state(self) -> None:
        geometry, state = self.studio.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._fit_docks = state is None  # the first layout: fit the inspector once shown
        if state is not None:
            self.restoreState(state)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._fit_docks:
            self._fit_docks = False
            QTimer.singleShot(0, self.fit_inspector)

    def fit_inspector(self) -> None:
        """Give the inspector dock the height its form needs, taken from the job queue below it
        while that keeps its own minimum (on a short screen the form scrolls instead)."""
        dock, jobs = self.inspector_dock, self.jobs_dock
        need = self.inspector.preferred_height() + dock.height() - dock.widget().height()
        room = dock.height() + jobs.height() - jobs.minimumSizeHint().height()
        if need > dock.height():
            self.resizeDocks([dock, jobs], [min(need, room), 1], Qt.Orientation.Vertical)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            event.accept()
            return
        s = self.studio
        if not (s.may_stop_jobs("closing") and s.may_replace_project("closing")):
            event.ignore()
            return
        self.shutdown(clean=True)
        event.accept()

    def shutdown(self, clean: bool = True) -> None:
        """Save window state, stop timers and the engine thread. clean=False keeps the autosave
        (what a crash leaves behind)."""
        if self._closed:
            return
        self._closed = True
        s = self.studio
        s.settings.set_window_state(self.saveGeometry(), self.saveState())
        s.settings.sync()
        if self.model_manager is not None:
            self.model_manager.shutdown()
        self.preview.shutdown()
        self.status.shutdown()
        s.shutdown(clean)
