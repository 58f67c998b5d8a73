"""Generation: the draft turned into one request record, the job queue, the engine thread's events.

    controller = GenerationController(settings, timeline, undo, messages, dialogs)
    controller.load_model()     # starts the engine thread on first use, loads on it
    controller.generate()       # Draft -> ClipRequest -> GenerateRequest -> Job (queued)
    controller.generate(takes=3)  # three jobs, seeds in a row, landing as takes of one clip
    controller.live_frame       # (job id, frame index, QImage) while the job runs
    controller.job_landed       # (clip id) once its frames are a clip on the timeline

One job runs at a time; events of any other request id are stale and dropped.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Signal
from PySide6.QtGui import QUndoStack

from engine.api import EngineError, GenerateRequest, ModelInfo

from .commands import AddClip, ReplaceClip
from .dialogs import Dialogs
from .engine_thread import EngineThread, Loader
from .images import fit_frames
from .settings import Settings
from .state.draft import MAX_TAKES, Draft, ImageSource
from .state.engine_presets import EngineOptions, gpu_memory
from .state.jobs import Job, JobQueue, JobState
from .state.messages import MessageLog
from .state.prompt_grammar import scene_caption
from .state.request import ClipRequest, SourceRef
from .state.timeline import Clip, Take, Timeline, new_id

log = logging.getLogger(__name__)

DEMO_GUIDANCE = 2.5  # the demo model's guidance default (the preference's)
MODE_TITLES = {"t2v": "Text", "i2v": "Image", "v2v": "Edit", "extend": "Extend"}


class GenerationController(QObject):
    model_loading = Signal()
    model_loaded = Signal(object)  # ModelInfo
    model_failed = Signal(str)
    live_frame = Signal(int, int, object)  # job id, frame index in its clip, QImage
    job_landed = Signal(str)  # clip id ("" when the job made no frames)

    def __init__(
        self,
        settings: Settings,
        timeline: Timeline,
        undo: QUndoStack,
        messages: MessageLog,
        dialogs: Dialogs,
        loader: Loader | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings, self.timeline, self.undo = settings, timeline, undo
        self.messages, self.dialogs = messages, dialogs
        self.jobs = JobQueue()
        s = settings
        self.draft = Draft(
            seed=s.seed, guidance=s.guidance, frames=s.frames, temperature=s.temperature
        )
        self.draft.set(seed_mode=s.seed_mode, takes=s.takes)
        self.draft.events.changed.connect(self._keep_seed_field)
        self.info: ModelInfo | None = None
        self.engine_ready = False
        self._last_progress = 0.0
        self._good_model: tuple[str, str, str] | None = None  # (model, device, precision)
        self._failed_model: tuple[str, str, str] | None = None
        self._good_options: EngineOptions | None = None  # the engine options of the last good load
        self._large_loaded = False  # a STARFlow-V model is loaded (its guidance default applies)

        self.engine = EngineThread(loader, self)
        w = self.engine.worker
        w.loaded.connect(self._on_loaded)
        w.load_failed.connect(self._on_load_failed)
        w.frame_ready.connect(self._on_frame)
        w.progress.connect(self._on_progress)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        timeline.events.selection.connect(self._on_selection)
        timeline.events.changed.connect(lambda: self.jobs.continue_numbers(timeline.last_job()))
        self.jobs.events.paused.connect(self._on_paused)

    # ---- model -----------------------------------------------------------------------------------
    def load_model(
        self, model: str | None = None, device: str | None = None, precision: str | None = None
    ) -> None:
        """(Re)load the pipeline on the engine thread (started on first use); None keeps the
        setting. A running job is cancelled first (its frames are kept)."""
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
        self.engine.start()
        self.engine.load(s.model or None, s.device, s.precision, self.loader_options())
        self.model_loading.emit()

    def loader_options(self) -> dict:
        """The engine options for this load: none for the built-in demo model; for a model file
        or Hub id, the preset's (or the card's) offload and window, aspect ratio, config, and the
        text encoder / VAE set in Engine > Settings, else the folders the model manager checked."""
        s = self.settings
        if not s.model:
            return {}
        options = s.engine_options.loader_options(gpu_memory())
        for name, part in (("text_encoder", "text-encoder"), ("vae", "vae")):
            options[name] = options[name] or s.part(part) or None  # the model manager's folder
        return options

    def set_engine_options(self, options: EngineOptions) -> bool:
        """Keep new engine options; a loaded model file reloads with them (asking first while a
        job runs, which is then cancelled and keeps its frames). False when the user declines."""
        s = self.settings
        before, loaded = s.engine_options, self.loader_options()
        if options == before:
            return True
        reload = bool(s.model) and options.loader_options(gpu_memory()) != loaded
        if reload and self.jobs.running() is not None:
            question = (
                "A job is generating. Reload the model with the new engine settings?"
                " The job stops and keeps the frames made so far."
            )
            if not self.dialogs.ask("Reload the model?", question):
                return False
        s.engine_options = options
        if self._large_loaded and options.guidance != before.guidance:
            self.draft.set(guidance=options.guidance)
        if reload:
            self.load_model()
        return True

    def _on_loaded(self, info: ModelInfo) -> None:
        self.info, self.engine_ready = info, True
        s = self.settings
        if self._failed_model is not None:  # the engine fell back to the last model that worked
            s.model, s.device, s.precision = self._good_model or ("", "auto", "auto")
            if self._good_options is not None:  # e.g. a config file that does not fit
                s.engine_options = self._good_options
            self._failed_model = None
        self._good_model = (s.model, s.device, s.precision)
        self._good_options = s.engine_options
        self._take_guidance_default(info)
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

    def _take_guidance_default(self, info: ModelInfo) -> None:
        """Moving between the demo model and a STARFlow-V model, the draft takes the new model's
        guidance default (the demo's 2.5; the 7B's 3.5 from Engine > Settings)."""
        large = info.name.startswith("STARFlow-V")
        if large != self._large_loaded:
            default = self.settings.engine_options.guidance if large else DEMO_GUIDANCE
            self.draft.set(guidance=default)
        self._large_loaded = large

    # ---- requests --------------------------------------------------------------------------------
    def generate(self, takes: int | None = None) -> Job | None:
        """Queue the draft's request, with its start image (i2v) or source clip (v2v, extend).
        With `takes` > 1 (else the draft's `takes`), that many jobs with seeds in a row (seed,
        seed + 1, ...) land as takes of one clip; returns the first. (The draft moves its Seed
        field on as its seed mode says when it sees the jobs queued.)"""
        d = self.draft
        n = max(1, min(int(takes or getattr(d, "takes", 1) or 1), MAX_TAKES))
        record = d.request()
        group = new_id("c") if n > 1 else None
        first = None
        for k in range(n):
            job = self.submit(
                replace(record, seed=record.seed + k), image=d.image, clip_id=d.clip, take_of=group
            )
            if job is None:
                return first
            first = first or job
        return first

    def set_paused(self, paused: bool) -> None:
        """Pause the queue (the running job finishes; the next waits) or resume it."""
        self.jobs.set_paused(paused)

    def _on_paused(self, paused: bool) -> None:
        if paused:
            waiting = len(self.jobs.queued())
            self.messages.info(f"Queue paused: {waiting} waiting job(s) start when resumed")
        else:
            self.messages.info("Queue resumed")
            self._dispatch()

    def regenerate(self, clip_id: str | None = None, seed: int | None = None) -> Job | None:
        """The clip's record again with another seed (the draft's seed if changed, else random):
        a new take of the clip, shown when it lands (its Takes menu goes back; undo removes it).
        Should the clip be gone by then, the take lands as a clip at the end."""
        clip = self.timeline.clip(clip_id or self.timeline.selected)
        if clip is None or clip.request is None:
            return self._refuse(
                "Select a generated clip to regenerate (imported clips have no request)"
            )
        if seed is None:
            same = self.draft.seed == clip.request.seed
            seed = random.randrange(2**31) if same else self.draft.seed
        job = self.submit(replace(clip.request, seed=seed), after=clip.id)
        if job is not None:  # said, not written into the draft's Seed field
            job.into = clip.id
            self.messages.info(f"Job #{job.number}: a new take with seed {seed}")
        return job

    def extend(
        self, clip_id: str | None = None, prompt: str | None = None, frames: int | None = None
    ) -> Job | None:
        """Continue a clip from its last frames; the new frames land after it. The draft's Mode
        becomes Extend (what this job is); unless a prompt was typed for it, the prompt is the
        clip's scene caption (an edit's: its source's caption with the edit applied)."""
        clip = self.timeline.clip(clip_id or self.timeline.selected)
        if clip is None:
            return self._refuse("Select a clip to extend")
        d = self.draft
        if prompt is None and not (d.typed and d.prompt.strip()):
            d.set(mode="extend", prompt=scene_caption(self.timeline, clip.id))
        self.draft.set(mode="extend")
        text = (prompt if prompt is not None else self.draft.prompt).strip()
        if not text and clip.request is not None:
            text = clip.request.prompt
        record = self.draft.request()
        record = replace(record, mode="extend", prompt=text, frames=frames or record.frames)
        return self.submit(record, clip_id=clip.id)

    def edit(self, clip_id: str | None = None, instruction: str | None = None) -> Job | None:
        """Video to video: a new clip following `instruction`; the original stays. The draft's
        Mode becomes Edit (what this job is, and what Generate then repeats)."""
        clip = self.timeline.clip(clip_id or self.timeline.selected)
        if clip is None:
            return self._refuse("Select a clip to edit")
        self.draft.set(mode="v2v")
        text = instruction if instruction is not None else self.draft.prompt
        return self.submit(replace(self.draft.request(), mode="v2v", prompt=text), clip_id=clip.id)

    def submit(
        self,
        record: ClipRequest,
        image: ImageSource | None = None,
        clip_id: str | None = None,
        after: str | None = None,
        take_of: str | None = None,
    ) -> Job | None:
        """Queue a record. Its source is `record.source` (regenerate), else the start `image`
        (i2v) or the clip `clip_id` (v2v, extend; the new clip lands after it). Jobs with the
        same `take_of` id land as takes of one clip."""
        record = replace(record, prompt=record.prompt.strip())
        if not record.prompt:
            v2v = record.mode == "v2v"
            return self._refuse("Type an edit instruction first" if v2v else "Type a prompt first")
        pixels = self._source_pixels(record, image, clip_id)
        if pixels is None:
            return None
        image_array, video, source = pixels
        if record.mode == "v2v":
            record = replace(record, frames=len(video))
        try:
            request = record.engine_request(image_array, video)
        except EngineError as exc:
            return self._refuse(str(exc))
        if record.mode == "i2v" and source is None:  # a new start image becomes project media
            media = self.timeline.add_media(image.image[None], "image", image.name)
            source = SourceRef(media.id, 0, 1)
        if record.mode in ("v2v", "extend") and record.source is None:
            after = clip_id  # a new clip made from a clip lands after it
        model = self.info.name if self.info else (self.settings.model or "demo")
        return self._queue(replace(record, source=source, model=model), request, after, take_of)

    def _queue(
        self,
        record: ClipRequest,
        request: GenerateRequest,
        after: str | None,
        take_of: str | None = None,
    ) -> Job:
        title = f"{MODE_TITLES[record.mode]}: {record.prompt}"
        job = self.jobs.add(Job(record, request, title, after, take_of))
        self._remember_defaults(record)
        if not self.engine_ready:
            self.messages.info(f"Job #{job.number} queued: waiting for the model")
        elif self.jobs.paused:
            self.messages.info(f"Job #{job.number} queued: the queue is paused")
        self._dispatch()
        return job

    def _source_pixels(
        self, record: ClipRequest, image: ImageSource | None, clip_id: str | None
    ) -> tuple[np.ndarray | None, np.ndarray | None, SourceRef | None] | None:
        """(start image, source video, source ref) for a record; None (refused) when missing."""
        if record.source is not None:
            frames = self.timeline.source_frames(record.source)
            if frames is None:
                return self._refuse("The source of this clip is no longer in the project")
            if record.mode == "i2v":
                return frames[0], None, record.source
            return None, frames, record.source
        if record.mode == "i2v":
            if image is None:
                return self._refuse(
                    "Image to video needs a start image: drop one on the timeline or open one"
                )
            return image.image, None, None
        if record.mode in ("v2v", "extend"):
            clip = self.timeline.clip(clip_id)
            if clip is None:
                return self._refuse("Select the clip to edit or extend on the timeline")
            ref = SourceRef(clip.media, clip.start, clip.stop)
            return None, self.timeline.clip_frames(clip.id), ref
        return None, None, None

    def _refuse(self, text: str) -> None:
        self.messages.error(text)
        return None

    def _remember_defaults(self, record: ClipRequest) -> None:
        s = self.settings
        s.guidance, s.temperature = record.guidance, record.temperature
        if record.mode != "v2v" and record.frames:
            s.frames = record.frames

    def _keep_seed_field(self, name: str) -> None:
        """The Seed field, its mode and Takes as they stand are what the next start shows (a
        Regenerate's seed is the clip's, not the field's)."""
        if name in ("seed", "seed_mode", "takes"):
            setattr(self.settings, name, getattr(self.draft, name))

    def choose_take(self, clip_id: str, index: int) -> None:
        """Show take `index` of a clip (undoable)."""
        clip = self.timeline.clip(clip_id)
        if clip is None or not 0 <= index < len(clip.all_takes()):
            return
        if index != clip.take_index:
            self.undo.push(ReplaceClip(self.timeline, clip.with_take(index), f"Take {index + 1}"))

    # ---- the queue -------------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Cancel the running job (it stops within one frame; its frames are kept as a clip)."""
        job = self.jobs.running()
        if job is None:
            return False
        job.cancel.set()
        self.messages.info(f"Cancelling job #{job.number}...")
        return True

    def remove_job(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state == JobState.RUNNING:
            self.cancel()
        else:
            self.jobs.remove(job_id)

    def move_job(self, job_id: int, delta: int) -> None:
        self.jobs.move(job_id, delta)

    def may_stop_jobs(self, doing: str, timeout_s: float = 120.0) -> bool:
        """Before the project is replaced or the editor closes (`doing`: "closing", ...): True when
        no job runs or waits, or the user agrees to stop them. The running job is cancelled and
        lands in this project as a partial clip; waiting jobs are dropped."""
        running, waiting = self.jobs.running(), self.jobs.queued()
        if running is None and not waiting:
            return True
        what = []
        if running is not None:
            made = f"{running.received} of {running.total} frames made"
            what.append(f"Job #{running.number} is generating ({made})")
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

    def shutdown(self) -> None:
        """Drop waiting jobs, cancel the running one, stop the engine thread."""
        for job in self.jobs.queued():
            self.jobs.set_state(job, JobState.CANCELLED)
        running = self.jobs.running()
        if running is not None:
            running.cancel.set()
        self.engine.shutdown()

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
            self.messages.error(f"Job #{job.number} failed: {message}")
            self._land(job, JobState.FAILED, message)

    def _land(self, job: Job, state: JobState, message: str = "") -> None:
        """Put a job's frames (all, or those made before a cancel/failure) on the timeline."""
        frames = job.result()
        clip_id = "" if frames is None else self._add_clip(job, state, frames)
        job.frames = []
        self.jobs.progress(job, job.done if frames is None else len(frames), job.total)
        self.jobs.set_state(job, state, message)
        if state == JobState.DONE:
            self.messages.info(f"Job #{job.number} done: {len(frames)} frames")
        elif state == JobState.CANCELLED:
            kept = 0 if frames is None else len(frames)
            self.messages.info(f"Job #{job.number} cancelled: kept {kept} frame(s)")
        self.job_landed.emit(clip_id)
        self._dispatch()

    def _add_clip(self, job: Job, state: JobState, frames: np.ndarray) -> str:
        t = self.timeline
        media = t.add_media(fit_frames(frames, t.width, t.height), "generated", job.title)
        name = job.title
        if state != JobState.DONE:
            name = f"{job.title} (partial {len(frames)}/{job.total})"
        take = Take(media.id, 0, len(frames), job.record, job.number)
        group = t.clip(job.into)
        if group is not None:  # a further take of a clip on the timeline: shown at once
            n = len(group.all_takes()) + 1
            self.undo.push(ReplaceClip(t, group.with_new_take(take, True), f"Add take {n}"))
            t.set_playhead(t.offset(group.id))
            return group.id
        clip = Clip(new_id("c"), media.id, 0, len(frames), name, job.record, job.number)
        if job.take_of:  # the group's later takes join this clip
            for other in self.jobs.jobs:
                if other.take_of == job.take_of:
                    other.into = clip.id
        after = t.clip(job.after)
        index = t.index(after.id) + 1 if after is not None else len(t.clips)
        self.undo.push(AddClip(t, clip, index, f"Add {job.title}"))
        t.set_playhead(t.offset(clip.id))
        return clip.id

    # ---- selection -------------------------------------------------------------------------------
    def _on_selection(self, clip_id: str | None) -> None:
        """Selecting a generated clip copies its record into the draft."""
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
