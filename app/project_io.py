"""Project I/O: new, open, save, autosave and crash recovery, import and export.

File work runs off the GUI thread on the TaskRunner; results and errors come back on the GUI
thread, errors as messages. Questions (save first? recover?) go through the injected Dialogs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from engine.api import EngineError, ModelInfo
from engine.media import VideoWriter, read_image, read_video, write_png

from .commands import AddClip
from .dialogs import Dialogs
from .images import fit_frames
from .settings import Settings
from .state.messages import MessageLog
from .state.project import is_new_folder, is_project, load_project, save_project
from .state.recovery import RecoverySession, find_orphans
from .state.timeline import Clip, Snapshot, Timeline, new_id
from .tasks import TaskRunner

log = logging.getLogger(__name__)

MAX_IMPORT_FRAMES = 2048


class ProjectIO(QObject):
    project_changed = Signal()  # path or unsaved state
    export_done = Signal(str)  # path

    def __init__(
        self,
        settings: Settings,
        dialogs: Dialogs,
        timeline: Timeline,
        undo: QUndoStack,
        messages: MessageLog,
        tasks: TaskRunner,
        model_info: Callable[[], ModelInfo | None],
        may_stop_jobs: Callable[[str], bool],
        parent: QObject | None = None,
    ) -> None:
        """`model_info` gives the loaded model (None while loading); `may_stop_jobs(doing)` asks
        to stop running jobs before the project is replaced."""
        super().__init__(parent)
        self.settings, self.dialogs, self.timeline, self.undo = settings, dialogs, timeline, undo
        self.messages, self.tasks = messages, tasks
        self.model_info, self.may_stop_jobs = model_info, may_stop_jobs
        self.project_path: Path | None = None
        self.saved_at: float | None = None
        self.recovery: RecoverySession | None = None
        self._edits = 0  # counts undo-stack changes, to skip autosaves with nothing new
        self._autosaved_edits = 0
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setObjectName("autosave")
        self.autosave_timer.timeout.connect(self.autosave)
        undo.indexChanged.connect(self._on_edit)
        undo.cleanChanged.connect(lambda _clean: self.project_changed.emit())

    def start(self, project: str | Path | None = None) -> None:
        """Offer recovery, open (or start) `project`, start autosaving."""
        try:
            self.recovery = RecoverySession(self.settings.recovery_dir)
        except EngineError as exc:
            self.messages.warning(f"Autosave is off: {exc}")
        self._offer_recovery()
        if project is not None:
            if is_new_folder(project):  # a new project that Save writes there
                self.new_project(project)
            else:
                self.open_project(project)
        self.autosave_timer.start(max(1, int(self.settings.autosave_minutes * 60_000)))

    def close(self, clean: bool = True) -> None:
        """End the recovery session; clean=False leaves the autosave behind (as a crash would)."""
        self.autosave_timer.stop()
        if self.recovery is not None:
            self.recovery.close(clean)
            self.recovery = None

    @property
    def dirty(self) -> bool:
        # the undo stack's last signals can arrive while Qt deletes it (at exit)
        return shiboken6.isValid(self.undo) and not self.undo.isClean()

    def _model_name(self) -> str:
        info = self.model_info()
        return info.name if info else ""

    # ---- projects --------------------------------------------------------------------------------
    def may_replace_project(self, doing: str) -> bool:
        """Before the timeline is replaced or the editor closes (`doing`: "closing", ...): True
        when nothing unsaved would be lost: no unsaved clips, saved now, or the user discards
        them. False when the user cancels or the save did not happen (its message says why)."""
        if not (self.dirty and self.timeline.clips):
            return True
        answer = self.dialogs.confirm_close(
            f"The project has unsaved changes. Save them before {doing}?"
        )
        if answer == "cancel":
            return False
        if answer == "save":
            self.save()
            self.tasks.wait()
            QCoreApplication.sendPostedEvents()
            QCoreApplication.processEvents()
            return not self.dirty
        return True

    def new_project(self, folder: str | Path | None = None) -> None:
        """An empty project; with `folder` (new or empty), Save writes it there without asking."""
        doing = "starting a new project"
        if not (self.may_stop_jobs(doing) and self.may_replace_project(doing)):
            return
        info = self.model_info()
        w, h, fps = (info.width, info.height, info.fps) if info else (64, 48, 16)
        folder = None if folder is None else Path(folder)
        self._set_project(Snapshot(w, h, float(fps), {}, (), None, 0), folder)
        if folder is not None:
            self.messages.info(f"New project {folder.name}: Save writes it to {folder}")

    def _set_project(self, snap: Snapshot, path: Path | None, dirty: bool = False) -> None:
        self.timeline.load_snapshot(snap)
        self.undo.clear()
        self.project_path, self.saved_at = path, None
        if dirty:
            self.undo.resetClean()
        self.project_changed.emit()

    def open_project(self, folder: str | Path | None = None) -> None:
        folder = folder or self.dialogs.open_project(self.settings.last_dir("project"))
        doing = f"opening {Path(folder).name}" if folder else ""
        if not folder or not (self.may_stop_jobs(doing) and self.may_replace_project(doing)):
            return
        folder = Path(folder)

        def done(result) -> None:
            timeline, _ = result
            self._set_project(timeline.snapshot(), folder)
            self.settings.set_last_dir("project", folder.parent)
            self.settings.add_recent_project(folder)
            self.messages.info(f"Opened {folder.name}")

        def failed(message: str) -> None:
            if not is_project(folder):  # moved or deleted: no use offering it again
                self.settings.forget_recent_project(folder)
            self.messages.error(f"Cannot open the project: {message}")

        self.tasks.submit(f"open {folder.name}", lambda: load_project(folder), done, failed)

    def save(self) -> None:
        if self.project_path is None:
            self.save_as()
        else:
            self._save_to(self.project_path)

    def save_as(self, folder: str | Path | None = None) -> None:
        folder = folder or self.dialogs.save_project(self.settings.last_dir("project"))
        if folder:
            self._save_to(Path(folder))

    def _save_to(self, folder: Path) -> None:
        snap, index, model = self.timeline.snapshot(), self.undo.index(), self._model_name()

        def done(saved_at: float) -> None:
            self.project_path, self.saved_at = folder, saved_at
            if self.undo.index() == index:
                self.undo.setClean()
            self.settings.set_last_dir("project", folder.parent)
            self.settings.add_recent_project(folder)
            self.messages.info(f"Saved {folder}")
            self.project_changed.emit()

        self.tasks.submit(
            f"save {folder.name}",
            lambda: save_project(snap, folder, model=model),
            done,
            lambda m: self.messages.error(f"Project not saved: {m}"),
        )

    # ---- autosave and recovery -------------------------------------------------------------------
    def _on_edit(self, _index: int) -> None:
        self._edits += 1

    def autosave(self) -> None:
        """Write a recovery copy when something changed since the last one (off the GUI thread)."""
        if self.recovery is None or self._edits == self._autosaved_edits:
            return
        if not self.dirty and (self.project_path is not None or not self.timeline.clips):
            return
        snap, edits, recovery = self.timeline.snapshot(), self._edits, self.recovery
        path, saved_at = self.project_path, self.saved_at

        def done(_t: float) -> None:
            self._autosaved_edits = edits

        self.tasks.submit(
            "autosave",
            lambda: recovery.autosave(snap, path, saved_at),
            done,
            lambda m: self.messages.warning(f"Autosave failed: {m}"),
        )

    def _offer_recovery(self) -> None:
        """Offer the newest autosave left by a crashed session when it is newer than its project's
        last save; recovered work is copied into this session's autosave before the old one goes."""
        try:
            orphans = find_orphans(self.settings.recovery_dir)
        except OSError as exc:
            self.messages.warning(f"Cannot look for autosaves: {exc}")
            return
        recovered = False
        for orphan in orphans:
            if not recovered and orphan.newer and self._ask_recover(orphan):
                try:
                    timeline, _ = load_project(orphan.folder)
                    snap = timeline.snapshot()
                    if self.recovery is not None:
                        self.recovery.autosave(snap, orphan.project, orphan.saved)
                except EngineError as exc:
                    self.messages.error(f"The autosave cannot be recovered: {exc}")
                    continue
                self._set_project(snap, orphan.project, dirty=True)
                self.saved_at = orphan.saved
                self.messages.info("Recovered unsaved work: save the project to keep it")
                recovered = True
            orphan.discard()

    def _ask_recover(self, orphan) -> bool:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(orphan.autosaved))
        of = f" of {orphan.project.name}" if orphan.project else ""
        return self.dialogs.ask(
            "Recover unsaved work?",
            f"STARFlow Studio did not exit cleanly. Recover the autosave from {when}{of}?",
        )

    # ---- files in --------------------------------------------------------------------------------
    def read_image(self, path: Path, done: Callable[[np.ndarray], None]) -> None:
        """Read an image off the GUI thread; `done` gets it fitted to the frame size (H, W, 3)."""
        w, h = self.timeline.width, self.timeline.height

        def finish(image: np.ndarray) -> None:
            t = self.timeline
            if (w, h) != (t.width, t.height):  # the model (and frame size) changed meanwhile
                image = fit_frames(image[None], t.width, t.height)[0]
            done(image)

        self.tasks.submit(
            f"open {path.name}",
            lambda: fit_frames(read_image(path)[None], w, h)[0],
            finish,
            lambda m: self.messages.error(f"Cannot open image: {m}"),
        )

    def import_video(self, path: str | Path | None = None) -> None:
        """Decode a video off the GUI thread, fit it to the project's frame size and add it as a clip."""
        path = path or self.dialogs.open_video(self.settings.last_dir("video"))
        if not path:
            return
        path = Path(path)
        self.settings.set_last_dir("video", path)
        w, h = self.timeline.width, self.timeline.height

        def work() -> tuple[np.ndarray, float]:
            frames, fps = read_video(path, max_frames=MAX_IMPORT_FRAMES)
            return fit_frames(frames, w, h), fps

        def done(result: tuple[np.ndarray, float]) -> None:
            frames, fps = result
            t = self.timeline
            frames = fit_frames(frames, t.width, t.height)
            media = t.add_media(frames, "video", path.name, fps)
            clip = Clip(new_id("c"), media.id, 0, len(frames), path.stem)
            self.undo.push(AddClip(t, clip, len(t.clips), f"Import {path.name}"))
            self.messages.info(f"Imported {path.name}: {len(frames)} frames")

        self.tasks.submit(
            f"import {path.name}",
            work,
            done,
            lambda m: self.messages.error(f"Cannot import video: {m}"),
        )

    # ---- files out -------------------------------------------------------------------------------
    def metadata(self, clips: list[Clip]) -> dict[str, str]:
        requests = [c.request for c in clips if c.request is not None]
        meta = {
            "comment": "made with STARFlow Studio",
            "model": next((r.model for r in requests if r.model), self._model_name()),
        }
        if requests:
            meta["prompt"] = " | ".join(dict.fromkeys(r.text for r in requests))
            meta["seed"] = ",".join(str(r.seed) for r in requests)
            meta["guidance"] = ",".join(str(r.guidance) for r in requests)
            meta["temperature"] = ",".join(
                "model default" if r.temperature is None else str(r.temperature) for r in requests
            )
        return meta

    def export_video(self, path: str | Path | None = None, clip_id: str | None = None) -> None:
        """Export the timeline (or one clip) to MP4 off the GUI thread, with prompt/seed/model
        in the metadata; the file appears only when complete."""
        t = self.timeline
        clips = [t.clip(clip_id)] if clip_id else list(t.clips)
        if not clips or clips[0] is None:
            self.messages.error("Nothing to export: the timeline is empty")
            return
        path = path or self.dialogs.export_video(self.settings.last_dir("export"))
        if not path:
            return
        path = Path(path).with_suffix(".mp4") if not Path(path).suffix else Path(path)
        self.settings.set_last_dir("export", path)
        frames = np.concatenate([t.clip_frames(c.id) for c in clips])
        meta, fps, size = self.metadata(clips), t.fps, (t.width, t.height)

        def work() -> None:
            with VideoWriter(path, fps, *size, meta) as writer:
                for i in range(0, len(frames), 16):
                    writer.write(frames[i : i + 16])

        def done(_r) -> None:
            self.messages.info(f"Exported {len(frames)} frames to {path}")
            self.export_done.emit(str(path))

        self.tasks.submit(
            f"export {path.name}", work, done, lambda m: self.messages.error(f"Export failed: {m}")
        )

    def export_frame(self, path: str | Path | None = None) -> None:
        frame = self.timeline.frame(self.timeline.playhead)
        if frame is None:
            self.messages.error("Nothing to export: the timeline is empty")
            return
        path = path or self.dialogs.export_frame(self.settings.last_dir("export"))
        if not path:
            return
        path = Path(path)
        self.settings.set_last_dir("export", path)
        self.tasks.submit(
            f"export {path.name}",
            lambda: write_png(path, frame),
            lambda _r: (
                self.messages.info(f"Exported frame to {path}"),
                self.export_done.emit(str(path)),
            ),
            lambda m: self.messages.error(f"Export failed: {m}"),
        )
