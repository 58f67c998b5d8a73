"""The main window: preview (centre; the start screen in its place until a project is open or
anything is made), timeline (under the preview), inspector and job queue (right, the full height),
menus with the keyboard shortcuts, Help > Keyboard shortcuts, status bar. Each view gets the models
it shows; this window wires the views' requests and the studio's signals together. Every action
calls a Studio method or a view's."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QGuiApplication,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QMenu,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .export import open_export_dialog
from .widgets.drops import FileDropMixin
from .widgets.focus import ClickFocus
from .widgets.inspector import InspectorView
from .widgets.job_queue import JobQueueView
from .widgets.messages import MessageArea
from .widgets.preview import PreviewView
from .widgets.shortcuts import EXTRA_KEYS, ShortcutSheet
from .widgets.start_screen import StartScreen
from .widgets.status import StatusPanel
from .widgets.timeline_menu import wire_timeline
from .widgets.timeline_view import TimelineView

if TYPE_CHECKING:
    from .engine_settings import EngineSettingsDialog
    from .model_manager import ModelManagerDialog
    from .studio import Studio

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_SIZE = (1400, 900)  # the first window, shrunk to the screen it opens on
INSPECTOR_WIDTH = 360
PREVIEW_ACTIONS = ("play", "prev", "next", "start", "end", "back", "stop", "forward", "loop")
PREVIEW_ACTIONS += ("fit", "actual_size", "fullscreen")
LAYOUT_VERSION = 2  # saved dock layouts of other versions are not restored
TIMELINE_HEIGHT = (170, 230)  # on short (under 900 px) and taller screens


def window_geometry(area: QRect, minimum: QSize) -> tuple[QSize, bool]:
    """The first window's size on a screen whose free area is `area`, and whether to maximise:
    DEFAULT_SIZE where it fits, else the whole area (a laptop screen); a screen under the minimum
    size keeps the default."""
    default = QSize(*DEFAULT_SIZE)
    if area.isEmpty() or (area.width() >= default.width() and area.height() >= default.height()):
        return default, False
    if area.width() < minimum.width() or area.height() < minimum.height():
        return default, False
    return area.size(), True


class MainWindow(FileDropMixin, QMainWindow):
    files_dropped = Signal(list)  # local paths

    def __init__(self, studio: Studio, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.studio = studio
        self._closed = False
        self.start_screen_done = False  # once the user acts, the start screen does not return
        self.model_manager: ModelManagerDialog | None = None
        self.setWindowTitle("STARFlow Studio[*]")
        self.setMinimumSize(960, 640)
        self._fit_to_screen()
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )
        # the right column (inspector, jobs) runs the window's full height; the timeline sits
        # under the preview only, so a short screen still shows the inspector's form
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        if studio.dialogs.parent is None:
            studio.dialogs.parent = self

        self.preview = PreviewView(studio.timeline, studio.jobs, studio.draft)
        self.start_screen = StartScreen()
        self.message_area = MessageArea(studio.messages)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.preview)
        self.pages.addWidget(self.start_screen)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.message_area)
        layout.addWidget(self.pages, 1)
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
        self._default_dock_sizes()

        self.status = StatusPanel(self.statusBar(), studio.messages)
        self.actions_ = self._make_actions()
        self._make_menus()
        self._connect_views()
        self._update_title()
        self._restore_state()
        self.click_focus = ClickFocus(self, self.preview.canvas)
        QApplication.instance().installEventFilter(self.click_focus)
        self.update_start_screen()

    def _fit_to_screen(self) -> None:
        screen = self.screen() or QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else QRect()
        size, maximise = window_geometry(area, self.minimumSize())
        if maximise:
            self.setGeometry(area)
            self.setWindowState(Qt.WindowState.WindowMaximized)
        else:
            self.resize(size)

    def _default_dock_sizes(self) -> None:
        short = self.height() < 900
        self.resizeDocks([self.inspector_dock], [INSPECTOR_WIDTH], Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.timeline_dock], [TIMELINE_HEIGHT[0 if short else 1]], Qt.Orientation.Vertical
        )

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
        preview.export_frame_requested.connect(s.export_frame)
        preview.set_loop(s.settings.loop)
        preview.actions.loop.toggled.connect(lambda on: setattr(s.settings, "loop", on))
        for view in (self, preview, tv, self.start_screen):
            view.files_dropped.connect(s.open_files)
        start = self.start_screen
        start.new_requested.connect(self._start_new)
        start.open_requested.connect(lambda: s.open_project())
        start.recent_requested.connect(s.open_project)
        start.reopen_changed.connect(self.actions_.reopen_last.setChecked)
        s.project_changed.connect(self.update_start_screen)
        s.live_frame.connect(lambda *_: self.update_start_screen())
        s.timeline.events.changed.connect(self.update_start_screen)
        s.draft.events.changed.connect(lambda name: name == "image" and self.update_start_screen())

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
        """A window-wide action; its tip (else its text) shows in the status bar and as tooltip."""
        action = QAction(text, self)
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        plain = text.replace("&", "").rstrip("…")
        action.setStatusTip(tip or plain)
        action.setToolTip(tip or plain)
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
        a.export = self._action("&Export timeline…", lambda: open_export_dialog(s, self), "Ctrl+E")
        a.export_clip = self._action(
            "Export selected &clip…",
            lambda: open_export_dialog(s, self, s.timeline.selected),
            "Ctrl+Shift+E",
        )
        a.recover = self._action("&Recover kept autosaves…", s.recover_kept)
        a.export_frame = self._action("Export &frame to PNG…", s.export_frame, "Ctrl+Alt+E")
        a.quit = self._action("&Quit", self.close, "Ctrl+Q")  # K.Quit is empty on some platforms

        a.undo = s.undo.createUndoAction(self, "&Undo")
        a.undo.setShortcuts(QKeySequence.keyBindings(K.Undo))
        a.redo = s.undo.createRedoAction(self, "&Redo")
        a.redo.setShortcuts(QKeySequence.keyBindings(K.Redo))
        self.addActions([a.undo, a.redo])
        a.delete = self._action("&Delete clip", s.delete_selected, K.Delete)
        a.duplicate = self._action("D&uplicate clip", s.duplicate_selected, "Ctrl+D")
        a.copy = self._action("&Copy clip", self.copy_clip, K.Copy, "Keep the selected clip")
        a.paste = self._action(
            "&Paste clip", self.paste_clip, K.Paste, "A copy after the selected clip, or at the end"
        )
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

        for name in PREVIEW_ACTIONS:  # playback, zoom: the preview's own (window-wide keys)
            setattr(a, name, getattr(p.actions, name))
        a.shortcuts = self._action(
            "&Keyboard shortcuts", self.show_shortcuts, ["F1", "?"], "Every key, by menu"
        )
        a.reopen_last = self._action(
            "Reopen the last project at start",
            lambda: None,
            tip="Open the most recent project when the editor starts",
        )
        a.reopen_last.setCheckable(True)
        a.reopen_last.setChecked(s.settings.reopen_last)
        a.reopen_last.toggled.connect(self._set_reopen_last)

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
            a.reopen_last,
            a.save,
            a.save_as,
            a.recover,
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
            a.copy,
            a.paste,
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
        for item in (a.play, a.prev, a.next, a.start, a.end, None, a.back, a.stop, a.forward):
            play.addSeparator() if item is None else play.addAction(item)
        play.addSeparator()
        play.addAction(a.loop)
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
        for item in (a.fit, a.actual_size, a.fullscreen, None):
            view.addSeparator() if item is None else view.addAction(item)
        for dock in (self.inspector_dock, self.jobs_dock, self.timeline_dock):
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        reset = view.addAction("Reset the panel layout")
        reset.setStatusTip("Put the inspector, jobs and timeline back where they start")
        reset.triggered.connect(self.reset_layout)
        help_ = mb.addMenu("&Help")
        help_.addAction(a.shortcuts)
        for menu in mb.findChildren(QMenu):
            menu.setToolTipsVisible(True)

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

    # ---- start screen, help ----------------------------------------------------------------------
    def update_start_screen(self) -> None:
        """The start screen shows until a project is opened or anything is made, dropped or
        loaded; after that the preview stays."""
        if self._closed:  # the studio's models outlive a closed window
            return
        s = self.studio
        idle = not (s.timeline.clips or s.project_path or s.draft.image or len(s.jobs.jobs))
        if not idle:
            self.start_screen_done = True
        show = idle and not self.start_screen_done
        if show and self.pages.currentWidget() is not self.start_screen:
            self.start_screen.set_recent(s.settings.recent_projects)
            self.start_screen.set_reopen(s.settings.reopen_last)
        self.pages.setCurrentWidget(self.start_screen if show else self.preview)

    def _start_new(self) -> None:
        self.start_screen_done = True
        self.update_start_screen()
        self.inspector.prompt.setFocus(Qt.FocusReason.OtherFocusReason)

    def copy_clip(self) -> None:
        """Edit > Copy clip (Ctrl+C): the selected clip is what Paste copies (the timeline's menu
        keeps the same one)."""
        t = self.studio.timeline
        clip = t.clip(t.selected)
        if clip is None:
            self.studio.messages.error("Select a clip to copy")
            return
        self.timeline_view.copied = clip.id
        self.studio.messages.info(f"Copied {clip.name or 'the clip'} ({clip.length} frames)")

    def paste_clip(self) -> None:
        """Edit > Paste clip (Ctrl+V): a copy of the copied clip after the selected one, else at
        the end; undoable."""
        t, view = self.studio.timeline, self.timeline_view
        if t.clip(view.copied) is None:
            self.studio.messages.error("Copy a clip first (Ctrl+C)")
            return
        wire_timeline(self)
        index = t.index(t.selected) + 1 if t.clip(t.selected) is not None else len(t.clips)
        view.paste_requested.emit(view.copied, index)

    def _set_reopen_last(self, on: bool) -> None:
        self.studio.settings.reopen_last = on
        self.start_screen.set_reopen(on)

    def reopen_last_project(self) -> bool:
        """At start, with the setting on and no project given or recovered: the most recent
        project that still exists. True when one was opened."""
        s = self.studio
        if self._closed or not s.settings.reopen_last:
            return False
        if not s.autosave_timer.isActive():  # studio.start() has not finished (a recovery offer)
            QTimer.singleShot(250, self, self.reopen_last_project)
            return False
        if s.project_path or s.timeline.clips:
            return False
        last = next((f for f in s.settings.recent_projects if f.is_dir()), None)
        if last is None:
            return False
        s.open_project(last)
        return True

    def show_shortcuts(self) -> ShortcutSheet:
        """Help > Keyboard shortcuts (F1, ?): every menu's keys, read from the menus themselves."""
        sheet = ShortcutSheet(self.menuBar(), EXTRA_KEYS, self)
        sheet.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        sheet.show()
        self.shortcut_sheet = sheet
        return sheet

    def reset_layout(self) -> None:
        for dock, area in (
            (self.inspector_dock, Qt.DockWidgetArea.RightDockWidgetArea),
            (self.jobs_dock, Qt.DockWidgetArea.RightDockWidgetArea),
            (self.timeline_dock, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock.setFloating(False)
            self.addDockWidget(area, dock)
            dock.show()
        self._default_dock_sizes()
        QTimer.singleShot(0, self, self.fit_inspector)

    def _on_model(self, _info) -> None:
        s = self.studio.settings
        for v, action in self.actions_.devices.items():
            action.setChecked(v == s.device)
        for v, action in self.actions_.precisions.items():
            action.setChecked(v == s.precision)

    def _update_title(self) -> None:
        path = self.studio.project_path
        name = (path.name if path else "Untitled") + (
            " (read-only)" if self.studio.read_only else ""
        )
        self.setWindowTitle(f"{name}[*] — STARFlow Studio")
        self.setWindowModified(self.studio.dirty)

    def _restore_state(self) -> None:
        """Geometry and dock layout as last closed; a layout saved by an older version (other
        dock places) is dropped for the default one."""
        geometry, state = self.studio.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        restored = state is not None and self.restoreState(state, LAYOUT_VERSION)
        self._fit_docks = not restored  # the first layout: fit the inspector once shown
        self._first_show = True

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._fit_docks:
            self._fit_docks = False
            QTimer.singleShot(0, self, self.fit_inspector)
        if self._first_show:  # after studio.start(PROJECT) has run (app.__main__ shows first)
            self._first_show = False
            QTimer.singleShot(0, self, self.reopen_last_project)

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
        s.settings.set_window_state(self.saveGeometry(), self.saveState(LAYOUT_VERSION))
        QApplication.instance().removeEventFilter(self.click_focus)
        s.settings.sync()
        if self.model_manager is not None:
            self.model_manager.shutdown()
        self.preview.shutdown()
        self.status.shutdown()
        s.shutdown(clean)
