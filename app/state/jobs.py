"""The job queue: generation requests waiting for, running on, or done with the engine thread.

The GUI thread owns the queue; the engine runs one job at a time, the first queued one, unless
the queue is paused (the running job finishes, the next waits for resume). Queued jobs can be
reordered or removed; the running job can only be cancelled. Jobs are numbered for the user by
the queue (`Job.number`), continuing after the numbers a reopened project's clips carry.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from types import SimpleNamespace

import numpy as np

from engine.api import GenerateRequest

from .events import Event
from .request import ClipRequest

HISTORY = 20  # finished jobs kept in the list for display


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.CANCELLED, JobState.FAILED)


@dataclass(eq=False)
class Job:
    """One queued request: its record (kept by the clip it makes), the engine's request made from
    that record (with the source's pixels and the id engine events carry), and where the clip
    lands: after clip `after` (None: the end), or as a take of clip `into` while that is on the
    timeline. Jobs with one `take_of` group id are takes of one clip: the first to land makes the
    clip, and the others' `into` becomes it."""

    record: ClipRequest
    request: GenerateRequest
    title: str
    after: str | None = None
    take_of: str | None = None
    into: str | None = None
    number: int = 0  # shown to the user ("job #3"); given by JobQueue.add
    state: JobState = JobState.QUEUED
    done: int = 0
    total: int = 0
    message: str = ""
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    started: float | None = None  # time.monotonic() when it began running
    ended: float | None = None

    def __post_init__(self) -> None:
        if not self.total:
            video = self.request.video
            self.total = self.request.frames or (len(video) if video is not None else 0)

    @property
    def id(self) -> int:
        return self.request.id

    @property
    def fps(self) -> float | None:
        """Frames made per second of running time (None before it has run)."""
        if self.started is None:
            return None
        seconds = (self.ended or time.monotonic()) - self.started
        return self.done / seconds if seconds > 0 and self.done else None

    @property
    def eta(self) -> float | None:
        """Seconds of running time left at the rate so far (None before the first frame)."""
        fps = self.fps
        if fps is None or self.state != JobState.RUNNING:
            return None
        return max(self.total - self.done, 0) / fps

    @property
    def seconds(self) -> float:
        """Running time so far, or in all once finished."""
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started

    @property
    def received(self) -> int:
        return sum(len(f) for f in self.frames)

    def add_frames(self, start: int, frames: np.ndarray) -> bool:
        """Append an event's frames; False (nothing kept) if they do not continue the clip."""
        if start != self.received:
            return False
        self.frames.append(frames)
        return True

    def result(self) -> np.ndarray | None:
        """All frames received so far (T, H, W, 3), or None."""
        return np.concatenate(self.frames) if self.frames else None


def format_eta(seconds: float) -> str:
    """'12 s', '3 min 05 s', '1 h 02 min' for a time left."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class JobQueue:
    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.paused = False
        self._next_number = 1
        self.events = SimpleNamespace(
            changed=Event("changed"),  # jobs added, removed or reordered
            updated=Event("updated"),  # (job): state or progress
            paused=Event("paused"),  # (bool)
        )

    def ordered(self) -> list[Job]:
        """The jobs as the user reads them: the running one, the waiting ones in the order they
        run, then the finished ones, newest first."""
        finished = [j for j in self.jobs if j.state.finished]
        running = [j for j in self.jobs if j.state == JobState.RUNNING]
        return running + self.queued() + finished[::-1]

    def continue_numbers(self, after: int) -> None:
        """Number new jobs after `after` (the highest number a reopened project carries)."""
        self._next_number = max(self._next_number, after + 1)

    def set_paused(self, paused: bool) -> None:
        """Paused: the running job finishes, waiting jobs wait until resumed."""
        if paused != self.paused:
            self.paused = paused
            self.events.paused.emit(paused)

    def get(self, job_id: int) -> Job | None:
        """The job whose engine request has id `job_id`."""
        return next((j for j in self.jobs if j.id == job_id), None)

    def queued(self) -> list[Job]:
        return [j for j in self.jobs if j.state == JobState.QUEUED]

    def running(self) -> Job | None:
        return next((j for j in self.jobs if j.state == JobState.RUNNING), None)

    def add(self, job: Job) -> Job:
        job.number = self._next_number
        self._next_number += 1
        self.jobs.append(job)
        self.events.changed.emit()
        return job

    def remove(self, job_id: int) -> Job | None:
        """Remove a queued or finished job (the running one must be cancelled instead)."""
        job = self.get(job_id)
        if job is None or job.state == JobState.RUNNING:
            return None
        self.jobs.remove(job)
        self.events.changed.emit()
        return job

    def move(self, job_id: int, delta: int) -> bool:
        """Move a queued job up (delta < 0) or down among the queued jobs."""
        job = self.get(job_id)
        queued = self.queued()
        if job is None or job not in queued:
            return False
        k = max(0, min(queued.index(job) + delta, len(queued) - 1))
        if queued[k] is job:
            return False
        self.jobs.remove(job)
        target = queued[k]
        i = self.jobs.index(target)
        self.jobs.insert(i + 1 if delta > 0 else i, job)
        self.events.changed.emit()
        return True

    def next_queued(self) -> Job | None:
        """The job to run next (None while paused)."""
        return None if self.paused else next(iter(self.queued()), None)

    def set_state(self, job: Job, state: JobState, message: str = "") -> None:
        job.state, job.message = state, message
        if state == JobState.RUNNING:
            job.started = time.monotonic()
        elif state.finished and job.started is not None:
            job.ended = time.monotonic()
        if state.finished:
            self._trim_history()
        self.events.updated.emit(job)

    def progress(self, job: Job, done: int, total: int) -> None:
        job.done, job.total = done, total
        self.events.updated.emit(job)

    def clear_finished(self) -> None:
        self.jobs = [j for j in self.jobs if not j.state.finished]
        self.events.changed.emit()

    def _trim_history(self) -> None:
        finished = [j for j in self.jobs if j.state.finished]
        if len(finished) > HISTORY:
            drop = set(map(id, finished[: len(finished) - HISTORY]))
            self.jobs = [j for j in self.jobs if id(j) not in drop]
            self.events.changed.emit()
