"""Project I/O: new, open, save (one editor per project folder), import and export; autosave and
crash recovery in project_recovery.py.

File work runs off the GUI thread on the TaskRunner; results and errors come back on the GUI
thread, errors as messages. Questions (save first? recover?) go through the injected Dialogs.
"""

from __future__ import annotations

import logging
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
from .project_recovery import RecoveryMixin
from .settings import Settings
from .state.lock import ProjectLock, ProjectLocked
from .state.messages import MessageLog
from .state.project import (
    Loaded,
    ProjectChanged,
    Saved,
    Stamp,
    is_new_folder,
    is_project,
    read_project,
    save_project,
    stamp_of,
)
from .state.recovery import RecoverySession
from .state.timeline import Clip, Snapshot, Timeline, new_id
from .tasks import TaskRunner

log = logging.getLogger(__name__)

MAX_IMPORT_FRAMES = 2048


def _same(a: Path, b: Path) -> bool:
    return Path(a).absolute().resolve() == Path(b).absolute().resolve()


class ProjectIO(RecoveryMixin, QObject):
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
        self.lock: ProjectLock | None = None  # of project_path, while this editor has it
        self._locks: set[ProjectLock] = set()  # every lock held: self.lock, and an open's or save's
        self.stamp: Stamp | None = None  # of project_path's project.json as last read/written
        self.read_only = False  # another editor has project_path: Save asks for a new folder
        self._disk_changed = False  # project.json was written by someone else (said once)
        self.ending = False  # a signal ends the editor (keep_for_restart): no more questions
        self._edits = 0  # counts undo-stack changes, to skip autosaves with nothing new
        self._autosaved_edits = 0
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setObjectName("autosave")
        self.autosave_timer.timeout.connect(self.autosave)
        undo.indexChanged.connect(self._on_edit)
        undo.cleanChanged.connect(self._on_clean_changed)  # a method: gone with this object

    def start(self, project: str | Path | None = None) -> None:
        """Offer recovery, open (or start) `project`, start autosaving. Recovered work is never
        replaced by `project`: when it is that project's, `project` is not read again."""
        try:
            self.recovery = RecoverySession(self.settings.recovery_dir)
        except EngineError as exc:
            self.messages.warning(f"Autosave is off: {exc}")
        recovered = self._offer_recovery()
        if self.ending:  # a signal came while a question was open
            return
        if project is not None:
            project = Path(project)
            if recovered is not None:
                if recovered.project is None or not _same(recovered.project, project):
                    self.messages.warning(
                        f"{project.name} was not opened: the recovered work is open;"
                        f" save it, then open {project.name}"
                    )
            elif is_new_folder(project):  # a new project that Save writes there
                self.new_project(project)
            else:
                self.open_project(project)
        self.autosave_timer.start(max(1, int(self.settings.autosave_minutes * 60_000)))

    def close(self, clean: bool = True) -> None:
        """End the recovery session and give up the project's lock; clean=False leaves the
        autosave and the lock file behind (as a crash would)."""
        self.autosave_timer.stop()
        if self.recovery is not None:
            self.recovery.close(clean)
            self.recovery = None
        for lock in list(self._locks):
            self._release(lock) if clean else lock.abandon()
        self._locks.clear()
        self.lock = None

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
        self.check_disk()
        if not (self.dirty and self.timeline.clips):
            return True
        answer = self.dialogs.confirm_close(
            f"The project has unsaved changes. Save them before {doing}?"
        )
        if answer == "cancel":
            return False
        if answer == "save":
            self.save()
            while self.tasks.busy:  # a save that asks (changed on disk?) may save again
                self.tasks.wait()
                QCoreApplication.sendPostedEvents()
                QCoreApplication.processEvents()
            return not self.dirty
        return True

    def check_disk(self) -> bool:
        """Whether the project's project.json is still the version last read or written here;
        when another editor or program wrote it, say so once and mark the project unsaved (so
        the window does not read "saved" and closing asks)."""
        path = self.project_path
        if path is None or self.read_only or self._disk_changed:
            return not self._disk_changed
        try:
            now = stamp_of(path)
        except EngineError:
            return True  # unreadable for a moment: the save checks again
        if now == self.stamp:
            return True
        self._disk_changed = True
        self._autosaved_edits = -1  # this version is in no file now: the autosave keeps it
        self.messages.warning(
            f"{path.name} was changed on disk by another editor or program since it was"
            " opened or saved here: your version is kept as unsaved changes"
        )
        self.undo.resetClean()
        self.project_changed.emit()
        return False

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

    def _set_project(
        self,
        snap: Snapshot,
        path: Path | None,
        dirty: bool = False,
        lock: ProjectLock | None = None,
        stamp: Stamp | None = None,
        read_only: bool = False,
    ) -> None:
        self.timeline.load_snapshot(snap)
        self.undo.clear()
        self._take_lock(lock)
        self.project_path, self.saved_at = path, None
        self.stamp, self.read_only, self._disk_changed = stamp, read_only, False
        if dirty:
            self.undo.resetClean()
        self.project_changed.emit()

    def _take_lock(self, lock: ProjectLock | None) -> None:
        """Hold `lock` (or none) from now on, giving up the one held before."""
        if self.lock is not None and self.lock is not lock:
            self._release(self.lock)
        self.lock = lock

    def _release(self, lock: ProjectLock) -> None:
        self._locks.discard(lock)
        lock.release()

    def _lock_for(self, folder: Path) -> ProjectLock | None:
        """This editor's lock on `folder`: the one held, or a new one (raises ProjectLocked
        while another editor holds it). A stale lock taken over is reported."""
        if self.lock is not None and _same(self.lock.folder, folder) and self.lock.held:
            return self.lock
        lock = ProjectLock.acquire(folder)
        self._locks.add(lock)
        if lock.taken_over is not None:
            self.messages.warning(
                f"{folder.name} was locked by an editor that no longer has it open"
                f" ({lock.taken_over.describe()}): this editor has it now"
            )
        return lock

    def open_project(self, folder: str | Path | None = None) -> None:
        """Open a project folder. One another editor has open is offered read-only (Save asks
        for a new folder) or as a copy (untitled, unsaved)."""
        folder = folder or self.dialogs.open_project(self.settings.last_dir("project"))
        doing = f"opening {Path(folder).name}" if folder else ""
        if not folder or not (self.may_stop_jobs(doing) and self.may_replace_project(doing)):
            return
        folder = Path(folder)
        mode, lock, why = "edit", None, "another editor has it"
        if is_project(folder):
            try:
                lock = self._lock_for(folder)
            except ProjectLocked as exc:
                mode = self._ask_locked(exc)
                if mode is None:
                    return
            except EngineError as exc:  # a folder this user cannot write, say
                mode, why = "read-only", str(exc)

        def done(loaded: Loaded) -> None:
            snap = loaded.timeline.snapshot()
            if mode == "copy":
                self._set_project(snap, None, dirty=True)
                self.messages.info(
                    f"Opened a copy of {folder.name}: Save asks for a new folder to keep it in"
                )
                return
            self._set_project(snap, folder, lock=lock, stamp=loaded.stamp, read_only=not lock)
            self.settings.set_last_dir("project", folder.parent)
            self.settings.add_recent_project(folder)
            if mode == "read-only":
                self.messages.info(
                    f"Opened {folder.name} read-only ({why}): Save asks for a new folder"
                )
            else:
                self.messages.info(f"Opened {folder.name}")

        def failed(message: str) -> None:
            if lock is not None and lock is not self.lock:
                self._release(lock)
            if not is_project(folder):  # moved or deleted: no use offering it again
                self.settings.forget_recent_project(folder)
            self.messages.error(f"Cannot open the project {folder.name}: {message}")

        self.tasks.submit(f"open {folder.name}", lambda: read_project(folder), done, failed)

    def _ask_locked(self, exc: ProjectLocked) -> str | None:
        """'read-only', 'copy' or None (cancelled) for a folder another editor has open."""
        name = exc.folder.name
        if self.dialogs.ask(
            "Project open in another editor",
            f"{exc}. Open it read-only? (No: you are offered a copy instead)",
        ):
            return "read-only"
        if self.dialogs.ask(
            "Open a copy?",
            f"Open a copy of {name} instead? Save then asks for a new folder to keep it in.",
        ):
            return "copy"
        return None

    def save(self) -> None:
        if self.project_path is None:
            self.save_as()
        elif self.read_only:
            self.messages.warning(
                f"{self.project_path.name} is open read-only (another editor has it):"
                " choose a new folder for your version"
            )
            self.save_as()
        else:
            self._save_to(self.project_path)

    def save_as(self, folder: str | Path | None = None) -> None:
        folder = folder or self.dialogs.save_project(self.settings.last_dir("project"))
        if folder:
            self._save_to(Path(folder))

    def _save_to(self, folder: Path, force: bool = False) -> None:
        """Save into `folder`, holding its lock. Unless `force`, a project.json there that this
        editor did not write or read last is not overwritten without asking."""
        same = self.project_path is not None and _same(folder, self.project_path)
        if same and self.read_only:
            self.messages.error(f"Project not saved: {folder.name} is open read-only")
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = self._lock_for(folder)
        except OSError as exc:
            self.messages.error(f"Project not saved: cannot create {folder}: {exc.strerror}")
            return
        except EngineError as exc:
            self.messages.error(f"Project not saved: {exc}")
            return
        snap, index, model = self.timeline.snapshot(), self.undo.index(), self._model_name()
        expect = self.stamp if same else None

        def done(saved: Saved) -> None:
            self._take_lock(lock)
            self.project_path, self.saved_at, self.stamp = folder, saved.at, saved.stamp
            self.read_only, self._disk_changed = False, False
            if self.undo.index() == index:
                self.undo.setClean()
                if self.recovery is not None:
                    self.recovery.saved()
            self.settings.set_last_dir("project", folder.parent)
            self.settings.add_recent_project(folder)
            self.messages.info(f"Saved {folder}")
            self.project_changed.emit()

        def failed(message: str) -> None:
            if lock is not self.lock:
                self._release(lock)
            self.messages.error(f"Project not saved: {message}")

        def changed() -> None:  # project.json is not what this editor read or wrote last
            if lock is not self.lock:
                self._release(lock)
            if self._ask_overwrite(folder, same):
                self._save_to(folder, force=True)
            else:
                self.messages.warning(
                    f"Project not saved: {folder.name} is left as it is on disk;"
                    " Save As keeps your version in a new folder"
                )

        def work() -> Saved | None:
            try:
                return save_project(snap, folder, expect=expect, force=force, model=model)
            except ProjectChanged:
                return None  # asked about on the GUI thread

        self.tasks.submit(
            f"save {folder.name}", work, lambda r: changed() if r is None else done(r), failed
        )

    def _ask_overwrite(self, folder: Path, same: bool) -> bool:
        if same:
            text = (
                f"{folder.name} was changed on disk by another editor or program since it was"
                " opened or saved here. Replace that version with yours?"
            )
        else:
            text = f"{folder} already holds a project. Replace it with this one?"
        return self.dialogs.ask("Replace the project on disk?", text)

    def _on_clean_changed(self, _clean: bool) -> None:
        self.project_changed.emit()

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
