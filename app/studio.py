"""The studio: the editor's controller, tying the Qt-free models to the engine thread.

It owns the timeline, the undo stack, the job queue, the draft request, the message log, the
engine thread and the background file tasks; the main window and its widgets are views of it.
Every user action is a method here, so tests drive the same code the menus and buttons do.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from engine.api import EngineError, GenerateRequest, ModelInfo
from engine.media import IMAGE_TYPES, VIDEO_TYPES, VideoWriter, read_image, read_video, write_png

from .commands import AddClip, MoveClip, RemoveClip, ReplaceClip, SplitClip
from .dialogs import Dialogs
from .engine_thread import EngineThread, Loader
from .models.draft import Draft, ImageSource
from .models.jobs import Job, JobQueue, JobState
from .models.messages import MessageLog
from .models.project import is_new_folder, is_project, load_project, save_project
from .models.recovery import RecoverySession, find_orphans
from .models.timeline import Clip, ClipRequest, Snapshot, SourceRef, Timeline, new_id
from .settings import Settings
from .tasks import TaskRunner

log = logging.getLogger(__name__)

MAX_IMPORT_FRAMES = 2048
MODE_TITLES = {"t2v": "Text", "i2v": "Image", "v2v": "Edit", "extend": "Extend"}
MAX_CLIP_NAME = 200


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, height, width, 3): resize to cover and centre crop (as the pipeline does)."""
    from engine.frames import fit_frame

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([fit_frame(f, width, height) for f in frames])


class Studio(QObject):
    model_loading = Signal()
    model_loaded = Signal(object)  # ModelInfo
    model_failed = Signal(str)
    live_frame = Signal(int, int, object)  # job id, frame index in its clip, QImage
    job_landed = Signal(str)  # clip id ("" when the job made no frames)
    project_changed = Signal()  # path or unsaved state
    export_done = Signal(str)  # path
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
        self.jobs = JobQueue()
        self.messages = MessageLog()
        s = self.settings
        self.draft = Draft(
            seed=s.seed, guidance=s.guidance, frames=s.frames, temperature=s.temperature
        )
        self.info: ModelInfo | None = None
        self.engine_ready = False
        self.project_path: Path | None = None
        self.saved_at: float | None = None
        self.recovery: RecoverySession | None = None
        self._edits = 0  # counts undo-stack changes, to skip autosaves with nothing new
        self._autosaved_edits = 0
        self._last_progress = 0.0
        self._good_model: tuple[str, str, str] | None = None  # (model, device, precision)
        self._failed_model: tuple[str, str, str] | None = None

        self.engine = EngineThread(loader, self)
        w = self.engine.worker
        w.loaded.connect(self._on_loaded)
        w.load_failed.connect(self._on_load_failed)
        w.frame_ready.connect(self._on_frame)
        w.progress.connect(self._on_progress)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        self.tasks = TaskRunner(self)

        self.autosave_timer = QTimer(self)
        self.autosave_timer.setObjectName("autosave")
        self.autosave_timer.timeout.connect(self.autosave)
        self.undo.indexChanged.connect(self._on_edit)
        self.undo.cleanChanged.connect(self._on_clean_changed)
        self.timeline.events.selection.connect(self._on_selection)

    # ---- life cycle ------------------------------------------------------------------------------
    def start(self, project: str | Path | None = None) -> None:
        """Load the model (on the engine thread), offer recovery, open `project`, start autosaving."""
        self.load_model()
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

    def shutdown(self, clean: bool = True) -> None:
        """Stop timers, cancel jobs, stop the engine thread, finish file tasks. clean=False leaves
        the autosave behind (as a crash would)."""
        self.autosave_timer.stop()
        for job in self.jobs.queued():
            self.jobs.set_state(job, JobState.CANCELLED)
        running = self.jobs.running()
        if running is not None:
            running.cancel.set()
        self.engine.shutdown()
        self.tasks.wait()
        if self.recovery is not None:
            self.recovery.close(clean)
            self.recovery = None

    @property
    def dirty(self) -> bool:
        return not self.undo.isClean()

    @property
    def busy(self) -> bool:
        return self.jobs.running() is not None or bool(self.jobs.queued()) or self.tasks.busy

    # ---- model -----------------------------------------------------------------------------------
    def load_model(
        self, model: str | None = None, device: str | None = None, precision: str | None = None
    ) -> None:
        """(Re)load the pipeline on the engine thread; None keeps the setting. A running job is
        cancelled first (its frames are kept)."""
        s = self.settings
        if model is not None:
            s.model = model
        if device is not None:
            s.device = device
        if precision is not None:
            s.precision = precision
        self.engine_ready, self.info = False, None
        running = self.jobs.running()
        if running is not None:
            running.cancel.set()
        self.engine.load(s.model or None, s.device, s.precision)
        self.model_loading.emit()

    def _on_loaded(self, info: ModelInfo) -> None:
        self.info, self.engine_ready = info, True
        s = self.settings
        if self._failed_model is not None:  # the engine fell back to the last model that worked
            s.model, s.device, s.precision = self._good_model or ("", "auto", "auto")
            self._failed_model = None
        self._good_model = (s.model, s.device, s.precision)
        if not self.timeline.media:
            self.timeline.set_format(info.width, info.height, info.fps)
        self.messages.info(f"Model ready: {info.name} on {info.device} ({info.dtype})")
        for warning in info.warnings:
            self.messages.warning(warning)
        self.model_loaded.emit(info)
        self._dispatch()

    def _on_load_failed(self, message: str) -> None:
        s = self.settings
        self._failed_model = (s.model, s.device, s.precision)
        keep = "The previous model stays in use" if self._good_model else "Using the demo model"
        self.messages.error(f"Model not loaded: {message}. {keep}.")
        self.model_failed.emit(message)

    # ---- requests --------------------------------------------------------------------------------
    def generate(self) -> Job | None:
        """Queue the draft request (mode, prompt, seed, guidance, temperature, frames, source)."""
        d = self.draft
        return self._submit(
            d.mode, d.prompt, d.seed, d.guidance, d.frames, d.image, d.clip, d.temperature
        )

    def regenerate(self, clip_id: str | None = None, seed: int | None = None) -> Job | None:
        """The clip's request again with another seed (the draft's seed if changed, else random);
        the new take lands right after the original."""
        clip = self.timeline.clip(clip_id or self.timeline.selected)
        if clip is None or clip.request is None:
            return self._refuse(
                "Select a generated clip to regenerate (imported clips have no request)"
            )
        r = clip.request
        if seed is None:
            seed = self.draft.seed if self.draft.seed != r.seed else random.randrange(2**31)
        self.draft.set(seed=seed)
        image = source = None
        if r.source is not None:
            frames = self.timeline.source_frames(r.source)
            if frames is None:
                return self._refuse("The source of this clip is no longer in the project")
            if r.mode == "i2v":
                image = ImageSource("start image", frames[0])
            else:
                source = frames
        return self._submit(
            r.mode,
            r.prompt,
            seed,
            r.guidance,
            r.frames,
            image,
            None,
            r.temperature,
            after=clip.id,
            video=source,
            ref=r.source,
        )

    def extend(
        self, clip_id: str | None = None, prompt: str | None = None, frames: int | None = None
    ) -> Job | None:
        """Continue a clip from its last frames; the new frames land after it."""
        clip = self.timeline.clip(clip_id or self.timeline.selected)
        if clip is None:
            return self._refuse("Select a clip to extend")
        text = (prompt if prompt is not None else self.draft.prompt).strip()
        if not text and clip.request is not None:
            text = clip.request.prompt
        d = self.draft
        return self._submit(
            "extend", text, d.seed, d.guidance, frames or d.frames, None, clip.id, d.temperature
        )

    def edit(self, clip_id: str | None = None, instruction: str | None = None) -> Job | None:
        """Video to video: a new clip following `instruction`; the original stays."""
        clip = self.timeline.clip(clip_id or self.timeline.selected)
        if clip is None:
            return self._refuse("Select a clip to edit")
        text = instruction if instruction is not None else self.draft.prompt
        d = self.draft
        return self._submit("v2v", text, d.seed, d.guidance, 0, None, clip.id, d.temperature)

    def _refuse(self, text: str) -> None:
        self.messages.error(text)
        return None

    def _submit(
        self,
        mode: str,
        prompt: str,
        seed: int,
        guidance: float,
        frames: int,
        image: ImageSource | None,
        clip_id: str | None,
        temperature: float | None = None,
        after: str | None = None,
        video: np.ndarray | None = None,
        ref: SourceRef | None = None,
    ) -> Job | None:
        prompt = prompt.strip()
        if not prompt:
            return self._refuse(
                "Type a prompt first" if mode != "v2v" else "Type an edit instruction first"
            )
        image_array = None
        if mode == "i2v":
            if image is None:
                return self._refuse(
                    "Image to video needs a start image: drop one on the timeline or open one"
                )
            image_array = image.image
            if ref is None:
                ref = SourceRef(
                    self.timeline.add_media(image.image[None], "image", image.name).id, 0, 1
                )
        elif mode in ("v2v", "extend") and video is None:
            clip = self.timeline.clip(clip_id)
            if clip is None:
                return self._refuse("Select the clip to edit or extend on the timeline")
            video = self.timeline.clip_frames(clip.id)
            ref, after = SourceRef(clip.media, clip.start, clip.stop), clip.id
        if mode == "v2v":
            frames = len(video) if video is not None else frames
        try:
            request = GenerateRequest(
                prompt=prompt,
                mode=mode,
                frames=int(frames),
                seed=int(seed),
                guidance=float(guidance),
                temperature=temperature,
                image=image_array,
                video=video,
            )
        except EngineError as exc:
            return self._refuse(str(exc))
        model = self.info.name if self.info else (self.settings.model or "demo")
        clip_request = ClipRequest(
            mode, prompt, int(seed), float(guidance), int(frames), ref, model, temperature
        )
        title = f"{MODE_TITLES[mode]}: {prompt}"
        job = self.jobs.add(Job(request, clip_request, title, after))
        self._remember_defaults(seed, guidance, temperature, frames if mode != "v2v" else None)
        if not self.engine_ready:
            self.messages.info(f"Job #{job.id} queued: waiting for the model")
        self._dispatch()
        return job

    def _remember_defaults(
        self, seed: int, guidance: float, temperature: float | None, frames: int | None
    ) -> None:
        s = self.settings
        s.seed, s.guidance, s.temperature = int(seed), float(guidance), temperature
        if frames:
            s.frames = int(frames)

    def cancel(self) -> bool:
        """Cancel the running job (it stops within one frame; its frames are kept as a clip)."""
        job = self.jobs.running()
        if job is None:
            return False
        job.cancel.set()
        self.messages.info(f"Cancelling job #{job.id}...")
        return True

    def remove_job(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state == JobState.RUNNING:
            self.cancel()
        else:
            self.jobs.remove(job_id)

    def move_job(self, job_id: int, delta: int) -> None:
        self.jobs.move(job_id, delta)

    def _dispatch(self) -> None:
        if not self.engine_ready or self.jobs.running() is not None:
            return
        job = self.jobs.next_queued()
        if job is None:
            return
        self.jobs.set_state(job, JobState.RUNNING)
        self._last_progress = 0.0
        self.engine.submit(job.request, job.cancel)

    # ---- engine events (queued from the engine thread) --------------------------------------------
    def _current(self, request_id: int) -> Job | None:
        job = self.jobs.running()
        if job is None or job.id != request_id:
            log.debug("dropping a stale event of request %d", request_id)
            return None
        return job

    def _on_frame(self, request_id: int, start: int, frames: np.ndarray, images: list) -> None:
        job = self._current(request_id)
        if job is None:
            return
        if not job.add_frames(start, frames):
            log.warning(
                "job %d: frames at %d do not follow %d; dropped", job.id, start, job.received
            )
            return
        for i, image in enumerate(images):
            self.live_frame.emit(request_id, start + i, image)

    def _on_progress(self, request_id: int, done: int, total: int) -> None:
        job = self._current(request_id)
        now = time.monotonic()
        if job is not None and (done >= total or now - self._last_progress > 0.1):
            self._last_progress = now
            self.jobs.progress(job, done, total)

    def _on_finished(self, request_id: int) -> None:
        job = self._current(request_id)
        if job is not None:
            self._land(job, JobState.DONE)

    def _on_cancelled(self, request_id: int) -> None:
        job = self._current(request_id)
        if job is not None:
            self._land(job, JobState.CANCELLED)

    def _on_failed(self, request_id: int, message: str) -> None:
        job = self._current(request_id)
        if job is not None:
            self.messages.error(f"Job #{job.id} failed: {message}")
            self._land(job, JobState.FAILED, message)

    def _land(self, job: Job, state: JobState, message: str = "") -> None:
        """Put a job's frames (all, or those made before a cancel/failure) on the timeline."""
        frames = job.result()
        clip_id = ""
        if frames is not None:
            t = self.timeline
            media = t.add_media(fit_frames(frames, t.width, t.height), "generated", job.title)
            name = (
                job.title
                if state == JobState.DONE
                else f"{job.title} (partial {len(frames)}/{job.total})"
            )
            clip = Clip(new_id("c"), media.id, 0, len(frames), name, job.clip_request)
            after = t.clip(job.after)
            index = t.index(after.id) + 1 if after is not None else len(t.clips)
            self.undo.push(AddClip(t, clip, index, f"Add {job.title}"))
            t.set_playhead(t.offset(clip.id))
            clip_id = clip.id
        job.frames = []
        self.jobs.progress(job, job.done if frames is None else len(frames), job.total)
        self.jobs.set_state(job, state, message)
        if state == JobState.DONE:
            self.messages.info(f"Job #{job.id} done: {len(frames)} frames")
        elif state == JobState.CANCELLED:
            kept = 0 if frames is None else len(frames)
            self.messages.info(f"Job #{job.id} cancelled: kept {kept} frame(s)")
        self.job_landed.emit(clip_id)
        if clip_id:
            self.autosave()
        self._dispatch()

    # ---- selection -------------------------------------------------------------------------------
    def _on_selection(self, clip_id: str | None) -> None:
        clip = self.timeline.clip(clip_id)
        if clip is None:
            self.draft.set(clip=None)
            return
        changes: dict = {"clip": clip.id}
        r = clip.request
        if r is not None:
            changes.update(
                mode=r.mode,
                prompt=r.prompt,
                seed=r.seed,
                guidance=r.guidance,
                temperature=r.temperature,
            )
            if r.mode != "v2v":
                changes["frames"] = r.frames
            if r.mode == "i2v" and r.source is not None:
                frames = self.timeline.source_frames(r.source)
                if frames is not None:
                    changes["image"] = ImageSource("start image", frames[0])
        self.draft.set(**changes)

    def seek(self, frame: int) -> None:
        self.timeline.set_playhead(frame)
        self.seeked.emit(self.timeline.playhead)

    # ---- timeline edits (all undoable) -----------------------------------------------------------
    def delete_selected(self) -> None:
        if self.timeline.selected:
            self.undo.push(RemoveClip(self.timeline, self.timeline.selected))

    def duplicate_selected(self) -> None:
        t = self.timeline
        if t.selected:
            self.undo.push(
                AddClip(t, t.duplicate_of(t.selected), t.index(t.selected) + 1, "Duplicate clip")
            )

    def rename_selected(self, name: str | None = None) -> None:
        """Rename the selected clip (asks for the name when not given); undoable."""
        clip = self.timeline.clip(self.timeline.selected)
        if clip is None:
            self._refuse("Select a clip to rename")
            return
        if name is None:
            name = self.dialogs.clip_name(clip.name)
            if name is None:
                return
        name = " ".join(name.split())  # one line: no tabs or newlines in the timeline label
        if not name:
            self._refuse("A clip name cannot be empty")
        elif len(name) > MAX_CLIP_NAME:
            self._refuse(f"A clip name can have at most {MAX_CLIP_NAME} characters")
        elif name != clip.name:
            self.undo.push(ReplaceClip(self.timeline, replace(clip, name=name), "Rename clip"))

    def split_at_playhead(self) -> None:
        parts = self.timeline.split_parts(self.timeline.playhead)
        if parts is None:
            self.messages.info("Move the playhead inside a clip to split it")
            return
        self.undo.push(SplitClip(self.timeline, *parts))

    def trim(self, clip_id: str, start: int, stop: int) -> None:
        """Show media frames [start, stop) of a clip."""
        new = self.timeline.trimmed(clip_id, start, stop)
        if new != self.timeline.clip(clip_id):
            self.undo.push(ReplaceClip(self.timeline, new))

    def trim_to_playhead(self, side: str) -> None:
        """Trim the clip under the playhead: side 'start' drops frames before it, 'end' after it."""
        hit = self.timeline.locate(self.timeline.playhead)
        if hit is None:
            return
        clip, local = hit
        if side == "start":
            self.trim(clip.id, clip.start + local, clip.stop)
            self.timeline.set_playhead(self.timeline.offset(clip.id))
        else:
            self.trim(clip.id, clip.start, clip.start + local + 1)

    def move_clip(self, clip_id: str, index: int) -> None:
        index = max(0, min(index, len(self.timeline.clips) - 1))
        if self.timeline.clip(clip_id) is not None and self.timeline.index(clip_id) != index:
            self.undo.push(MoveClip(self.timeline, clip_id, index))

    def nudge_selected(self, delta: int) -> None:
        if self.timeline.selected:
            self.move_clip(
                self.timeline.selected, self.timeline.index(self.timeline.selected) + delta
            )

    # ---- files in --------------------------------------------------------------------------------
    def open_files(self, paths: list[str | Path]) -> None:
        """Dropped or opened files: images start image to video, videos are imported, a project
        folder is opened. Anything else is refused with a message."""
        for p in map(Path, paths):
            suffix = p.suffix.lower()
            if p.is_dir() and is_project(p):
                self.open_project(p)
            elif suffix in IMAGE_TYPES:
                self.load_image(p)
            elif suffix in VIDEO_TYPES:
                self.import_video(p)
            else:
                self.messages.error(
                    f"{p.name}: unsupported file (use PNG, JPEG, WebP, MP4, MOV, WebM or GIF)"
                )

    def load_image(self, path: str | Path | None = None, generate: bool = True) -> None:
        """Read and fit a start image off the GUI thread; it becomes the draft's i2v source, and
        with a prompt already typed, an image-to-video job starts at once."""
        path = path or self.dialogs.open_image(self.settings.last_dir("image"))
        if not path:
            return
        path = Path(path)
        self.settings.set_last_dir("image", path)
        w, h = self.timeline.width, self.timeline.height

        def work() -> np.ndarray:
            return fit_frames(read_image(path)[None], w, h)[0]

        def done(image: np.ndarray) -> None:
            if (w, h) != (self.timeline.width, self.timeline.height):
                image = fit_frames(image[None], self.timeline.width, self.timeline.height)[0]
            self.draft.set(mode="i2v", image=ImageSource(path.name, image))
            if generate and self.draft.prompt.strip():
                self.generate()
            else:
                self.messages.info(
                    f"{path.name} is the start image: describe the motion and press Ctrl+Enter"
                )

        self.tasks.submit(
            f"open {path.name}",
            work,
            done,
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

    # ---- projects --------------------------------------------------------------------------------
    def may_stop_jobs(self, doing: str, timeout_s: float = 120.0) -> bool:
        """Before the project is replaced or the editor closes (`doing`: "closing", ...): True when
        no job runs or waits, or the user agrees to stop them. The running job is cancelled and
        lands in this project as a partial clip (an unsaved change like any other, which
        may_replace_project then offers to save); waiting jobs are dropped."""
        running, waiting = self.jobs.running(), self.jobs.queued()
        if running is None and not waiting:
            return True
        what = []
        if running is not None:
            made = f"{running.received} of {running.total} frames made"
            what.append(f"Job #{running.id} is generating ({made})")
        if waiting:
            more = "more " if running is not None else ""
            what.append(f"{len(waiting)} {more}job{'s' if len(waiting) > 1 else ''} waiting")
        them = "them" if len(what) > 1 or len(waiting) > 1 else "it"
        question = f"{'; '.join(what)}. Stop {them} before {doing}?"
        if running is not None:
            question += " The frames made so far are kept as a clip."
        if not self.dialogs.ask("Jobs are running", question):
            return False
        for job in waiting:
            self.jobs.set_state(job, JobState.CANCELLED)
        if running is not None:
            running.cancel.set()
            deadline = time.monotonic() + timeout_s
            while running.state == JobState.RUNNING and time.monotonic() < deadline:
                QCoreApplication.processEvents()
                time.sleep(0.005)
        return True

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
        w, h, fps = (
            (self.info.width, self.info.height, self.info.fps) if self.info else (64, 48, 16)
        )
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
        snap, index = self.timeline.snapshot(), self.undo.index()
        model = self.info.name if self.info else ""

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

    def _on_clean_changed(self, _clean: bool) -> None:
        self.project_changed.emit()

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
            if (
                not recovered
                and orphan.newer
                and self.dialogs.ask(
                    "Recover unsaved work?",
                    "STARFlow Studio did not exit cleanly. Recover the autosave from "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(orphan.autosaved))}"
                    f"{f' of {orphan.project.name}' if orphan.project else ''}?",
                )
            ):
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

    # ---- files out -------------------------------------------------------------------------------
    def metadata(self, clips: list[Clip]) -> dict[str, str]:
        requests = [c.request for c in clips if c.request is not None]
        model = self.info.name if self.info else ""
        meta = {
            "comment": "made with STARFlow Studio",
            "model": next((r.model for r in requests if r.model), model),
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
