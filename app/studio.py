"""The studio: a facade over the editor's parts, one object for the menus, scripts and tests.

    studio = Studio(settings)        # the state and the parts; no thread runs yet
    window = MainWindow(studio)      # views of its models, wired to its actions
    studio.start(project)            # the engine thread starts and loads the model
    studio.generate()                # the same call the Generate button makes

It owns the shared state (timeline, undo stack, messages, settings, dialogs, file tasks) and
three parts: `generation` (draft, requests, job queue, engine thread), `project` (new, open,
save, autosave, recovery, import, export) and `edits` (undoable timeline edits). Its other
attributes read through to them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from engine.media import IMAGE_TYPES, VIDEO_TYPES

from .dialogs import Dialogs
from .editing import TimelineEditor
from .engine_thread import Loader
from .generation import GenerationController
from .images import fit_image, load_start_image
from .project_io import ProjectIO
from .settings import Settings
from .state.draft import ImageSource
from .state.messages import MessageLog
from .state.project import is_project
from .state.timeline import Timeline
from .tasks import TaskRunner


class _Via:
    """A facade attribute: `studio.name` is `studio.<part>.name`."""

    def __init__(self, part: str) -> None:
        self.part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, studio, owner=None):
        return self if studio is None else getattr(getattr(studio, self.part), self.name)

    def __set__(self, studio, value) -> None:
        raise AttributeError(f"set {self.name} on studio.{self.part}")


class Studio(QObject):
    seeked = Signal(int)  # the user moved the playhead

    def __init__(
        self,
        settings: Settings | None = None,
        loader: Loader | None = None,
        dialogs: Dialogs | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.dialogs = dialogs or Dialogs()
        self.timeline = Timeline()
        self.undo = QUndoStack(self)
        self.messages = MessageLog()
        self.tasks = TaskRunner(self)
        self.generation = GenerationController(
            self.settings, self.timeline, self.undo, self.messages, self.dialogs, loader, self
        )
        self.project = ProjectIO(
            self.settings,
            self.dialogs,
            self.timeline,
            self.undo,
            self.messages,
            self.tasks,
            model_info=lambda: self.generation.info,
            may_stop_jobs=self.generation.may_stop_jobs,
            parent=self,
        )
        self.edits = TimelineEditor(self.timeline, self.undo, self.messages, self.dialogs)
        self.generation.job_landed.connect(self._on_job_landed)

    # ---- life cycle ------------------------------------------------------------------------------
    def start(self, project: str | Path | None = None) -> None:
        """Start the engine thread and load the model, offer recovery, open `project`, autosave."""
        self.generation.load_model()
        self.project.start(project)

    def shutdown(self, clean: bool = True) -> None:
        """Stop autosaving, cancel jobs, stop the engine thread, finish file tasks. clean=False
        leaves the autosave behind (as a crash would)."""
        self.project.autosave_timer.stop()
        self.generation.shutdown()
        self.tasks.wait()
        self.project.close(clean)

    @property
    def busy(self) -> bool:
        return self.jobs.running() is not None or bool(self.jobs.queued()) or self.tasks.busy

    def _on_job_landed(self, clip_id: str) -> None:
        if clip_id:
            self.project.autosave()

    def seek(self, frame: int) -> None:
        self.timeline.set_playhead(frame)
        self.seeked.emit(self.timeline.playhead)

    # ---- files in --------------------------------------------------------------------------------
    def open_files(self, paths: list[str | Path]) -> None:
        """Dropped or opened files: images start image to video, videos are imported, a project
        folder is opened. Anything else is refused with a message."""
        for p in map(Path, paths):
            suffix = p.suffix.lower()
            if p.is_dir() and is_project(p):
                self.project.open_project(p)
            elif suffix in IMAGE_TYPES:
                self.load_image(p)
            elif suffix in VIDEO_TYPES:
                self.project.import_video(p)
            else:
                self.messages.error(
                    f"{p.name}: unsupported file (use PNG, JPEG, WebP, MP4, MOV, WebM or GIF)"
                )

    def load_image(self, path: str | Path | None = None, generate: bool = False) -> None:
        """Read and fit a start image off the GUI thread; it becomes the draft's i2v source (its
        crop can be changed in the inspector) and waits for its prompt. generate=True starts an
        image-to-video job at once when a prompt is typed."""
        path = path or self.dialogs.open_image(self.settings.last_dir("image"))
        if not path:
            return
        path = Path(path)
        self.settings.set_last_dir("image", path)
        w, h = self.timeline.width, self.timeline.height

        def done(source: ImageSource) -> None:
            t = self.timeline
            if (w, h) != (t.width, t.height):  # the model (and frame size) changed meanwhile
                image = fit_image(source.original, t.width, t.height, source.crop)
                source = replace(source, image=image)
            self.draft.set(mode="i2v", image=source)
            if generate and self.draft.prompt.strip():
                self.generate()
            else:
                self.messages.info(
                    f"{path.name} is the start image: describe the motion and press Ctrl+Enter"
                )

        self.tasks.submit(
            f"open {path.name}",
            lambda: load_start_image(path, w, h),
            done,
            lambda m: self.messages.error(f"Cannot open image: {m}"),
        )

    # ---- the facade: what menus, buttons, scripts and tests call ---------------------------------
    model_loading = _Via("generation")
    model_loaded = _Via("generation")
    model_failed = _Via("generation")
    live_frame = _Via("generation")
    job_landed = _Via("generation")
    draft = _Via("generation")
    jobs = _Via("generation")
    engine = _Via("generation")
    info = _Via("generation")
    engine_ready = _Via("generation")
    load_model = _Via("generation")
    generate = _Via("generation")
    regenerate = _Via("generation")
    extend = _Via("generation")
    edit = _Via("generation")
    submit = _Via("generation")
    cancel = _Via("generation")
    remove_job = _Via("generation")
    move_job = _Via("generation")
    may_stop_jobs = _Via("generation")

    project_changed = _Via("project")
    export_done = _Via("project")
    project_path = _Via("project")
    saved_at = _Via("project")
    recovery = _Via("project")
    read_only = _Via("project")
    check_disk = _Via("project")
    recover_kept = _Via("project")
    dirty = _Via("project")
    autosave_timer = _Via("project")
    autosave = _Via("project")
    may_replace_project = _Via("project")
    new_project = _Via("project")
    open_project = _Via("project")
    save = _Via("project")
    save_as = _Via("project")
    import_video = _Via("project")
    export_video = _Via("project")
    export_frame = _Via("project")
    metadata = _Via("project")

    delete_selected = _Via("edits")
    duplicate_selected = _Via("edits")
    rename_selected = _Via("edits")
    split_at_playhead = _Via("edits")
    trim = _Via("edits")
    trim_to_playhead = _Via("edits")
    move_clip = _Via("edits")
    nudge_selected = _Via("edits")
