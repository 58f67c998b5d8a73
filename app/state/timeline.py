"""The timeline: immutable media (frame arrays), clips that show a trimmed range of a medium,
the selection and the playhead. Qt-free; views listen to `Timeline.events`.

Clips sit back to back on one track in list order; moving a clip reorders it. Every clip
keeps the request record it was generated with (`ClipRequest`), so it can be regenerated.
A generated clip can hold several takes (variations of one request, seeds in a row): the clip
shows its active take; `with_take(i)` makes another take the active one.

Edits go through the primitives `insert`, `remove`, `replace` and `move` (what the undo
commands call); `trimmed`, `split_parts` and `duplicate_of` compute new clips without
changing anything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from .events import Event
from .request import ClipRequest, SourceRef


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True, eq=False)
class Media:
    """Frames (T, H, W, 3) uint8 RGB, read-only once made; shared by every clip that shows them."""

    id: str
    frames: np.ndarray = field(repr=False)
    fps: float
    kind: str  # "generated" | "video" | "image"
    name: str = ""

    def __post_init__(self) -> None:
        f = self.frames
        if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3 or len(f) < 1:
            raise ValueError(f"media frames must be (T, H, W, 3) uint8, got {f.shape} {f.dtype}")
        f.flags.writeable = False

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class Take:
    """One version of a clip: frames [start, stop) of medium `media`, made by `request` in job
    number `job` (0: unknown)."""

    media: str
    start: int
    stop: int
    request: ClipRequest | None = None
    job: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "media": self.media,
            "start": self.start,
            "stop": self.stop,
            "request": self.request.to_dict() if self.request else None,
            "job": self.job,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Take:
        request = ClipRequest.from_dict(d["request"]) if d.get("request") else None
        return cls(str(d["media"]), int(d["start"]), int(d["stop"]), request, int(d.get("job", 0)))


@dataclass(frozen=True)
class Clip:
    """Frames [start, stop) of medium `media` on the track. With takes, these fields are the
    active take's and `takes` lists every take (the active one included)."""

    id: str
    media: str
    start: int
    stop: int
    name: str = ""
    request: ClipRequest | None = None  # None for imported video
    job: int = 0  # the job number that made it (0: imported, or unknown)
    takes: tuple[Take, ...] = ()

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def take(self) -> Take:
        """The active take (what the clip shows)."""
        return Take(self.media, self.start, self.stop, self.request, self.job)

    @property
    def take_index(self) -> int:
        """The active take's position in `takes` (0 without takes)."""
        return next((i for i, t in enumerate(self.takes) if t.media == self.media), 0)

    def all_takes(self) -> tuple[Take, ...]:
        """Every take with the active one as the clip shows it now (trimmed or not)."""
        if not self.takes:
            return (self.take,)
        i = self.take_index
        return self.takes[:i] + (self.take,) + self.takes[i + 1 :]

    def with_take(self, index: int) -> Clip:
        """The clip showing take `index` (the current take keeps its trim)."""
        takes = self.all_takes()
        t = takes[index]
        return replace(
            self,
            media=t.media,
            start=t.start,
            stop=t.stop,
            request=t.request,
            job=t.job,
            takes=takes,
        )

    def with_new_take(self, take: Take, active: bool = False) -> Clip:
        """The clip with `take` added last (shown when `active`)."""
        clip = replace(self, takes=self.all_takes() + (take,))
        return clip.with_take(len(clip.takes) - 1) if active else clip

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id,
            "media": self.media,
            "start": self.start,
            "stop": self.stop,
            "name": self.name,
            "request": self.request.to_dict() if self.request else None,
        }
        if self.job:
            d["job"] = self.job
        if len(self.takes) > 1:
            d["takes"] = [t.to_dict() for t in self.all_takes()]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Clip:
        request = ClipRequest.from_dict(d["request"]) if d.get("request") else None
        clip = cls(
            str(d["id"]),
            str(d["media"]),
            int(d["start"]),
            int(d["stop"]),
            str(d.get("name", "")),
            request,
        )
        return clip.with_extras(d)

    def with_extras(self, d: dict[str, Any]) -> Clip:
        """This clip with the job number and takes of its project-file dict `d` (both optional).
        ValueError names what is wrong: the takes must include the clip's own media."""
        job = d.get("job", 0)
        if isinstance(job, bool) or not isinstance(job, int) or job < 0:
            raise ValueError(f"clip {self.id}: job must be a whole number >= 0, got {job!r}")
        raw = d.get("takes") or []
        if not isinstance(raw, list):
            raise ValueError(f"clip {self.id}: takes must be a list")
        try:
            takes = tuple(Take.from_dict(t) for t in raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"clip {self.id}: a take is damaged: {exc}") from exc
        if takes and all(t.media != self.media for t in takes):
            raise ValueError(f"clip {self.id}: its media is none of its takes")
        if any(not 0 <= t.start < t.stop for t in takes):
            raise ValueError(f"clip {self.id}: a take's frame range is empty")
        return replace(self, job=job, takes=takes)


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of the timeline's content (safe to save from another thread)."""

    width: int
    height: int
    fps: float
    media: dict[str, Media]
    clips: tuple[Clip, ...]
    selected: str | None
    playhead: int

    def referenced_media(self) -> list[str]:
        """Media that clips show or that clip requests name as their source, in first-use order."""
        ids: dict[str, None] = {}
        for c in self.clips:
            for t in c.all_takes():
                ids[t.media] = None
                if t.request and t.request.source:
                    ids[t.request.source.media] = None
        return [m for m in ids if m in self.media]


class Timeline:
    def __init__(self, width: int = 64, height: int = 48, fps: float = 16.0) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.media: dict[str, Media] = {}
        self.clips: list[Clip] = []
        self.selected: str | None = None
        self.playhead = 0
        self.events = SimpleNamespace(
            changed=Event("changed"),  # clips inserted/removed/replaced/moved
            selection=Event("selection"),  # (clip id | None)
            playhead=Event("playhead"),  # (frame)
        )

    # ---- queries ------------------------------------------------------------------------------
    @property
    def duration(self) -> int:
        return sum(c.length for c in self.clips)

    def clip(self, clip_id: str | None) -> Clip | None:
        return next((c for c in self.clips if c.id == clip_id), None)

    def index(self, clip_id: str) -> int:
        for i, c in enumerate(self.clips):
            if c.id == clip_id:
                return i
        raise KeyError(clip_id)

    def offset(self, clip_id: str) -> int:
        """The timeline frame where a clip starts."""
        return sum(c.length for c in self.clips[: self.index(clip_id)])

    def locate(self, frame: int) -> tuple[Clip, int] | None:
        """(clip, frame within the clip) shown at timeline frame `frame`."""
        if frame < 0:
            return None
        for c in self.clips:
            if frame < c.length:
                return c, frame
            frame -= c.length
        return None

    def frame(self, frame: int) -> np.ndarray | None:
        """(H, W, 3) uint8 shown at timeline frame `frame`, or None past the end."""
        hit = self.locate(frame)
        if hit is None:
            return None
        clip, local = hit
        return self.media[clip.media].frames[clip.start + local]

    def last_job(self) -> int:
        """The highest job number any clip or take carries (0: none)."""
        return max((t.job for c in self.clips for t in c.all_takes()), default=0)

    def clip_frames(self, clip_id: str) -> np.ndarray:
        """The (T, H, W, 3) frames a clip shows (a read-only view)."""
        c = self.clip(clip_id)
        if c is None:
            raise KeyError(clip_id)
        return self.media[c.media].frames[c.start : c.stop]

    def source_frames(self, ref: SourceRef) -> np.ndarray | None:
        m = self.media.get(ref.media)
        return None if m is None else m.frames[ref.start : ref.stop]

    def all_frames(self) -> np.ndarray:
        """Every frame of the timeline in order (T, H, W, 3)."""
        if not self.clips:
            return np.zeros((0, self.height, self.width, 3), np.uint8)
        return np.concatenate([self.clip_frames(c.id) for c in self.clips])

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.width,
            self.height,
            self.fps,
            dict(self.media),
            tuple(self.clips),
            self.selected,
            self.playhead,
        )

    # ---- media --------------------------------------------------------------------------------
    def set_format(self, width: int, height: int, fps: float) -> None:
        """The frame size of the project; only while it holds no media."""
        if self.media and (width, height) != (self.width, self.height):
            raise ValueError("the frame size cannot change once the project has media")
        self.width, self.height, self.fps = width, height, fps

    def add_media(
        self, frames: np.ndarray, kind: str, name: str = "", fps: float | None = None
    ) -> Media:
        frames = np.asarray(frames)
        if frames.shape[1:3] != (self.height, self.width):
            raise ValueError(
                f"frames are {frames.shape[2]}x{frames.shape[1]}, the project is {self.width}x{self.height}"
            )
        media = Media(new_id("m"), np.ascontiguousarray(frames), fps or self.fps, kind, name)
        self.media[media.id] = media
        return media

    def put_media(self, media: Media) -> None:
        """Add an existing medium (project loading)."""
        self.media[media.id] = media

    # ---- primitive edits (each emits `changed`) -------------------------------------------------
    def insert(self, index: int, clip: Clip) -> None:
        if clip.media not in self.media:
            raise KeyError(f"unknown media {clip.media}")
        if not 0 <= clip.start < clip.stop <= len(self.media[clip.media]):
            raise ValueError(f"clip range {clip.start}:{clip.stop} outside its media")
        if self.clip(clip.id) is not None:
            raise ValueError(f"clip {clip.id} is already on the timeline")
        self.clips.insert(max(0, min(index, len(self.clips))), clip)
        self._changed()

    def remove(self, clip_id: str) -> tuple[int, Clip]:
        i = self.index(clip_id)
        clip = self.clips.pop(i)
        if self.selected == clip_id:
            self.select(None)
        self._changed()
        return i, clip

    def replace(self, clip: Clip) -> Clip:
        """Swap in a clip with the same id (trim, rename); returns the old one."""
        i = self.index(clip.id)
        old, self.clips[i] = self.clips[i], clip
        self._changed()
        return old

    def move(self, clip_id: str, index: int) -> int:
        """Move a clip to position `index`; returns its old position."""
        old = self.index(clip_id)
        clip = self.clips.pop(old)
        self.clips.insert(max(0, min(index, len(self.clips))), clip)
        self._changed()
        return old

    def _changed(self) -> None:
        if self.playhead >= max(self.duration, 1):
            self.playhead = max(self.duration - 1, 0)
            self.events.playhead.emit(self.playhead)
        self.events.changed.emit()

    # ---- pure helpers (new clips; nothing changes) --------------------------------------------
    def trimmed(self, clip_id: str, start: int, stop: int) -> Clip:
        """The clip showing media frames [start, stop), clamped to its medium, at least 1 frame."""
        c = self.clip(clip_id)
        if c is None:
            raise KeyError(clip_id)
        n = len(self.media[c.media])
        start = max(0, min(start, n - 1))
        stop = max(start + 1, min(stop, n))
        return replace(c, start=start, stop=stop)

    def split_parts(self, frame: int) -> tuple[Clip, Clip, Clip] | None:
        """(original, left, right) when timeline frame `frame` lies strictly inside a clip."""
        hit = self.locate(frame)
        if hit is None or hit[1] == 0:
            return None
        clip, local = hit
        left = replace(clip, stop=clip.start + local)
        right = replace(clip, id=new_id("c"), start=clip.start + local)
        return clip, left, right

    def duplicate_of(self, clip_id: str) -> Clip:
        c = self.clip(clip_id)
        if c is None:
            raise KeyError(clip_id)
        return replace(c, id=new_id("c"), name=(c.name + " copy").strip())

    # ---- selection and playhead ---------------------------------------------------------------
    def select(self, clip_id: str | None) -> None:
        if clip_id is not None and self.clip(clip_id) is None:
            clip_id = None
        if clip_id != self.selected:
            self.selected = clip_id
            self.events.selection.emit(clip_id)

    def set_playhead(self, frame: int) -> None:
        frame = max(0, min(int(frame), max(self.duration - 1, 0)))
        if frame != self.playhead:
            self.playhead = frame
            self.events.playhead.emit(frame)

    def load_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole content (new/open/recover project), emitting every event."""
        self.width, self.height, self.fps = snap.width, snap.height, snap.fps
        self.media = dict(snap.media)
        self.clips = list(snap.clips)
        self.selected = snap.selected if self.clip(snap.selected) else None
        self.playhead = max(0, min(snap.playhead, max(self.duration - 1, 0)))
        self.events.changed.emit()
        self.events.selection.emit(self.selected)
        self.events.playhead.emit(self.playhead)
