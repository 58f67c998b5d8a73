"""Project folders: `project.json` plus one lossless `media/<id>.npz` per medium.

    result = save_project(timeline.snapshot(), folder, expect=stamp, model="...")
    timeline, doc = load_project(folder)           # or read_project(folder) for its stamp too

Media never change once made, so a medium's file is written once and reused by later saves.
Every file is written to a temporary name (created with the user's umask) and renamed into
place: media first, project.json next, and only then the media files project.json no longer
names are removed. Saves into one folder take turns (an exclusive lock on the folder, a load
takes a shared one), so a reader never sees project.json name a removed file. A save compares
project.json with the stamp of the version it last read or wrote and raises ProjectChanged
when someone else wrote it since. A failed save (a full disk included) raises EngineError and
leaves the previous project intact. A damaged project.json is refused at load with
"damaged project: <field> ...", naming the first bad field (project_check.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.api import EngineError
from engine.media import disk_error

from .project_check import MAX_FRAMES, MEDIA_DIR, PROJECT_FILE, VERSION, check, damaged, parse
from .timeline import Clip, Media, Snapshot, Timeline

try:
    import fcntl
except ImportError:  # Windows: saves do not take turns
    fcntl = None

log = logging.getLogger(__name__)

MAX_PROJECT_BYTES = 64 << 20  # project.json


class ProjectChanged(EngineError):
    """project.json was written by someone else since this editor last read or wrote it."""


@dataclass(frozen=True)
class Stamp:
    """What a project.json held when read or written: its size and content hash."""

    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Stamp:
        return cls(len(data), hashlib.sha256(data).hexdigest())


def stamp_of(folder: str | Path) -> Stamp | None:
    """The stamp of `folder`'s project.json now, None when there is none."""
    try:
        return Stamp.of((Path(folder) / PROJECT_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EngineError(f"cannot read {Path(folder) / PROJECT_FILE}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Saved:
    at: float  # the save time (epoch s)
    stamp: Stamp  # of the project.json written


def is_project(folder: str | Path) -> bool:
    return (Path(folder) / PROJECT_FILE).is_file()


def is_new_folder(folder: str | Path) -> bool:
    """True for a folder not made yet, or empty: one a new project may be saved in. Anything
    else, an unreadable folder too, is for load_project to open or to refuse."""
    folder = Path(folder)
    try:
        return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
    except OSError:
        return False


def write_file(path: str | Path, data: bytes | memoryview) -> None:
    """Write `data` to a temporary beside `path`, created with the user's umask (not 0600),
    fsync, then rename over `path`. On any error `path` keeps its old content."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_error(exc, path) from exc


@contextlib.contextmanager
def _turn(folder: Path, exclusive: bool) -> Iterator[None]:
    """Saves into `folder` take turns (exclusive); loads wait for a save to finish (shared)."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield  # not lockable (not a folder yet, no permission): the checks below still hold
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def save_project(
    snap: Snapshot,
    folder: str | Path,
    expect: Stamp | None = None,
    force: bool = False,
    **extra: Any,
) -> Saved:
    """Write a snapshot into `folder` (created if needed). Unless `force`, project.json must
    still be what `expect` stamps (None: no project.json yet), else ProjectChanged is raised
    and nothing is written."""
    folder = Path(folder)
    try:
        (folder / MEDIA_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(
            f"cannot create the project folder {folder}: {exc.strerror or exc}"
        ) from exc
    with _turn(folder, exclusive=True):
        if not force:
            now = stamp_of(folder)
            if now != expect:
                raise ProjectChanged(
                    f"{folder / PROJECT_FILE} was "
                    + ("written" if now else "removed")
                    + " by someone else since this editor "
                    + ("read it" if expect else "looked")
                )
        used = snap.referenced_media()
        for mid in used:
            path = folder / MEDIA_DIR / f"{mid}.npz"
            if not path.is_file():
                _write_media(snap.media[mid], path)
        doc = {
            "version": VERSION,
            "saved": time.time(),
            "width": snap.width,
            "height": snap.height,
            "fps": snap.fps,
            "media": [
                {
                    "id": m.id,
                    "file": f"{MEDIA_DIR}/{m.id}.npz",
                    "frames": len(m),
                    "fps": m.fps,
                    "kind": m.kind,
                    "name": m.name,
                }
                for m in (snap.media[mid] for mid in used)
            ],
            "clips": [c.to_dict() for c in snap.clips],
            "selected": snap.selected,
            "playhead": snap.playhead,
            **extra,
        }
        data = json.dumps(doc, indent=1).encode()
        write_file(folder / PROJECT_FILE, data)
        _prune(folder, set(used))
    return Saved(doc["saved"], Stamp.of(data))


def _write_media(media: Media, path: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=media.frames)
    write_file(path, buf.getbuffer())


def _prune(folder: Path, used: set[str]) -> None:
    """Remove media files neither this save nor the project.json now on disk names (another
    writer that does not take turns may have replaced it meanwhile)."""
    try:
        doc = json.loads((folder / PROJECT_FILE).read_bytes())
        named = {str(e.get("id")) for e in doc.get("media", []) if isinstance(e, dict)}
    except (OSError, ValueError, AttributeError, TypeError):
        return  # unreadable now: remove nothing
    for path in (folder / MEDIA_DIR).glob("*.npz"):
        if path.stem not in used and path.stem not in named:
            path.unlink(missing_ok=True)


def load_project(folder: str | Path) -> tuple[Timeline, dict[str, Any]]:
    """Read a project folder -> (timeline, the whole project.json). Raises EngineError naming
    what is missing or damaged."""
    loaded = read_project(folder)
    return loaded.timeline, loaded.doc


@dataclass
class Loaded:
    timeline: Timeline
    doc: dict[str, Any]
    stamp: Stamp  # of the project.json read


def read_project(folder: str | Path) -> Loaded:
    """load_project, with the stamp of the project.json read (for ProjectChanged checks)."""
    folder = Path(folder)
    if not is_project(folder):
        raise EngineError(f"{folder} is not a STARFlow Studio project (no {PROJECT_FILE})")
    for _ in range(3):  # a writer that does not take turns may remove media meanwhile
        with _turn(folder, exclusive=False):
            data = _read_doc(folder / PROJECT_FILE)
            doc = parse(data)
            timeline, entries, clips = check(doc)
            try:
                _load_media(folder, entries, timeline)
                break
            except EngineError:
                if stamp_of(folder) == Stamp.of(data):
                    raise
    else:
        raise EngineError(f"{folder} kept changing while it was read: open it again")
    _place_clips(timeline, clips)
    selected = doc.get("selected")
    timeline.selected = selected if timeline.clip(selected) else None
    timeline.playhead = max(0, min(doc.get("playhead", 0), max(timeline.duration - 1, 0)))
    return Loaded(timeline, doc, Stamp.of(data))


def _read_doc(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_PROJECT_BYTES:
            raise damaged(f"{PROJECT_FILE} is {size >> 20} MB")
        return path.read_bytes()
    except OSError as exc:
        raise EngineError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _load_media(folder: Path, entries: list[dict[str, Any]], timeline: Timeline) -> None:
    """Read every medium, once their headers say they fit in memory."""
    shapes = [_media_shape(folder, e, timeline, f"media[{i}]") for i, e in enumerate(entries)]
    need, have = sum(int(np.prod(s)) for s in shapes), _memory()
    if have and need > have // 2:
        raise EngineError(
            f"the project's media need {_size(need)} of memory,"
            f" more than half of this machine's {_size(have)}"
        )
    for entry in entries:
        timeline.put_media(_read_media(folder, entry, timeline))


def _place_clips(timeline: Timeline, clips: list[Clip]) -> None:
    """Put the clips on the timeline once every medium and range they name is there."""
    for i, clip in enumerate(clips):
        for take in clip.all_takes():
            refs = [(f"clips[{i}]", take.media, take.start, take.stop)]
            if take.request and take.request.source:
                src = take.request.source
                refs.append((f"clips[{i}].request.source", src.media, src.start, src.stop))
            for where, mid, start, stop in refs:
                if mid not in timeline.media:
                    raise damaged(f"{where}.media names {mid!r}, which is not in the media list")
                n = len(timeline.media[mid])
                if not 0 <= start < stop <= n:
                    raise damaged(f"{where} range {start}:{stop} is outside its {n}-frame media")
        timeline.clips.append(clip)


def _size(n: int) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.1f} KB"


def _memory() -> int:
    """Physical memory in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _media_shape(folder: Path, entry: dict[str, Any], timeline: Timeline, where: str) -> tuple:
    """A media file's frame array shape, read from its header before any frame is decompressed
    (a small file may claim terabytes): (T, H, W, 3) uint8 at the project's frame size."""
    rel = entry["file"]
    path = folder / rel
    if not path.is_file():
        raise EngineError(f"project media file missing: {rel}")
    try:
        with zipfile.ZipFile(path) as z, z.open("frames.npy") as f:
            size = z.getinfo("frames.npy").file_size
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, _fortran, dtype = read(f)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EngineError(f"project media file damaged: {rel} ({exc})") from exc
    want = (timeline.height, timeline.width, 3)
    if len(shape) != 4 or shape[1:] != want or dtype != np.uint8 or not 1 <= shape[0] <= MAX_FRAMES:
        raise EngineError(f"project media file damaged: {rel} holds {shape} {dtype}")
    if size < int(np.prod(shape)):
        raise EngineError(f"project media file damaged: {rel} is cut short")
    if entry.get("frames") is not None and entry["frames"] != shape[0]:
        raise damaged(f"{where}.frames is {entry['frames']}, its file {rel} has {shape[0]}")
    return shape


def _read_media(folder: Path, entry: dict[str, Any], timeline: Timeline) -> Media:
    """Read a media file whose header _media_shape checked."""
    mid, rel = entry["id"], entry["file"]
    try:
        with np.load(folder / rel, allow_pickle=False) as z:
            frames = z["frames"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EngineError(f"project media file damaged: {rel} ({exc})") from exc
    if frames.shape[1:] != (timeline.height, timeline.width, 3) or frames.dtype != np.uint8:
        raise EngineError(f"project media file damaged: {rel} holds {frames.shape} {frames.dtype}")
    return Media(
        mid,
        frames,
        float(entry.get("fps", timeline.fps)),
        entry.get("kind", "video"),
        entry.get("name", ""),
    )
