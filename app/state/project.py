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
"damaged project: <field> ...", naming the first bad field.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.api import MAX_SEED, MODES, EngineError
from engine.media import disk_error

from .timeline import Clip, Media, Snapshot, Timeline

try:
    import fcntl
except ImportError:  # Windows: saves do not take turns
    fcntl = None

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
MEDIA_DIR = "media"
VERSION = 1
MAX_SIDE = 16384  # frame width/height
MAX_FPS = 1000.0
MAX_FRAMES = 1_000_000  # frames of one medium or one request
MAX_PROJECT_BYTES = 64 << 20  # project.json
KINDS = ("generated", "video", "image")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # media and clip ids (media ids name files)


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
            doc = _parse(data)
            timeline, entries, clips = _check(doc)
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
            raise _damaged(f"{PROJECT_FILE} is {size >> 20} MB")
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
                    raise _damaged(f"{where}.media names {mid!r}, which is not in the media list")
                n = len(timeline.media[mid])
                if not 0 <= start < stop <= n:
                    raise _damaged(f"{where} range {start}:{stop} is outside its {n}-frame media")
        timeline.clips.append(clip)


# ---- checking project.json: every field's type and range, named when wrong ---------------------
def _damaged(what: str) -> EngineError:
    return EngineError(f"damaged project: {what}")


def _parse(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except RecursionError:
        raise _damaged(f"{PROJECT_FILE} is nested too deeply") from None
    except UnicodeDecodeError:
        raise _damaged(f"{PROJECT_FILE} is not UTF-8 text") from None
    except ValueError as exc:
        raise _damaged(f"{PROJECT_FILE} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _damaged(f"{PROJECT_FILE} must hold an object, got {_kind(doc)}")
    version = doc.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise _damaged(
            f"version {version} is from a newer STARFlow Studio (this one reads {VERSION})"
        )
    _int(doc, "version", "", 0, VERSION, default=0)
    return doc


def _check(doc: dict[str, Any]) -> tuple[Timeline, list[dict[str, Any]], list[Clip]]:
    width = _int(doc, "width", "", 1, MAX_SIDE)
    height = _int(doc, "height", "", 1, MAX_SIDE)
    fps = _num(doc, "fps", "", MAX_FPS)
    entries = [_obj(e, f"media[{i}]") for i, e in enumerate(_list(doc, "media", ""))]
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"media[{i}]."
        mid = _id(e, "id", where, seen, "media id")
        if _str(e, "file", where) != f"{MEDIA_DIR}/{mid}.npz":
            raise _damaged(f"{where}file must be {MEDIA_DIR}/{mid}.npz, got {_show(e['file'])}")
        _int(e, "frames", where, 1, MAX_FRAMES, default=None)
        _num(e, "fps", where, MAX_FPS, default=fps)
        if _str(e, "kind", where, "video") not in KINDS:
            raise _damaged(f"{where}kind must be one of {', '.join(KINDS)}, got {_show(e['kind'])}")
        _str(e, "name", where, "")
    seen = set()
    clips = [
        _clip(_obj(c, f"clips[{i}]"), f"clips[{i}]", seen)
        for i, c in enumerate(_list(doc, "clips", ""))
    ]
    if doc.get("selected") is not None:
        _str(doc, "selected", "")
    _int(doc, "playhead", "", 0, 2**62, default=0)
    return Timeline(width, height, fps), entries, clips


def _clip(c: dict[str, Any], name: str, seen: set[str]) -> Clip:
    """Check a clip's fields (its takes' too), then read it as the timeline does."""
    where = f"{name}."
    _id(c, "id", where, seen, "clip id")
    _str(c, "name", where, "")
    _part(c, where)
    if c.get("takes") is not None:
        for j, take in enumerate(_list(c, "takes", where)):
            _part(_obj(take, f"{where}takes[{j}]"), f"{where}takes[{j}].")
    try:
        return Clip.from_dict(c)
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(f"{name}: {exc}") from None


def _part(d: dict[str, Any], where: str) -> None:
    """What a clip and each of its takes have: a media range, a request, a job number."""
    _str(d, "media", where)
    _int(d, "start", where, 0, MAX_FRAMES)
    _int(d, "stop", where, 1, MAX_FRAMES)
    _int(d, "job", where, 0, 2**62, default=0)
    if d.get("request") is not None:
        _request(_obj(d["request"], f"{where}request"), f"{where}request.")


def _request(d: dict[str, Any], where: str) -> None:
    mode = _str(d, "mode", where)
    if mode not in MODES:
        raise _damaged(f"{where}mode must be one of {', '.join(MODES)}, got {_show(mode)}")
    _str(d, "prompt", where)
    _int(d, "seed", where, 0, MAX_SEED)
    _num(d, "guidance", where, 1000.0, zero=True)
    _int(d, "frames", where, 0, MAX_FRAMES)
    _str(d, "model", where, "")
    if d.get("temperature") is not None:
        _num(d, "temperature", where, 100.0)
    if d.get("source") is not None:
        source, w = _obj(d["source"], f"{where}source"), f"{where}source."
        _str(source, "media", w)
        _int(source, "start", w, 0, MAX_FRAMES)
        _int(source, "stop", w, 1, MAX_FRAMES)


_MISSING: Any = object()


def _get(d: dict[str, Any], key: str, where: str, default: Any) -> Any:
    if key in d:
        return d[key]
    if default is _MISSING:
        raise _damaged(f"{where}{key} is missing")
    return default


def _int(d, key: str, where: str, low: int, high: int, default: Any = _MISSING) -> Any:
    v = _get(d, key, where, default)
    if v is default and default is not _MISSING:
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise _damaged(f"{where}{key} must be a whole number, got {_show(v)}")
    if not low <= v <= high:
        raise _damaged(f"{where}{key} must be from {low} to {high}, got {_show(v)}")
    return v


def _num(d, key: str, where: str, high: float, default: Any = _MISSING, zero: bool = False):
    """A finite number above 0 (from 0 with `zero`) up to `high`."""
    v = _get(d, key, where, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _damaged(f"{where}{key} must be a number, got {_show(v)}")
    v = float(v)
    if not (math.isfinite(v) and (v >= 0 if zero else v > 0) and v <= high):
        low = "from 0" if zero else "above 0"
        raise _damaged(f"{where}{key} must be a number {low} up to {high:g}, got {_show(v)}")
    return v


def _str(d, key: str, where: str, default: Any = _MISSING) -> str:
    v = _get(d, key, where, default)
    if not isinstance(v, str):
        raise _damaged(f"{where}{key} must be text, got {_show(v)}")
    return v


def _id(d, key: str, where: str, seen: set[str], what: str) -> str:
    v = _str(d, key, where)
    if not _ID.match(v):
        raise _damaged(f"{where}{key} {_show(v)} is not a valid {what}")
    if v in seen:
        raise _damaged(f"{what} {v} appears twice")
    seen.add(v)
    return v


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _damaged(f"{where} must be an object, got {_show(v)}")
    return v


def _list(d, key: str, where: str) -> list[Any]:
    v = _get(d, key, where, _MISSING)
    if not isinstance(v, list):
        raise _damaged(f"{where}{key} must be a list, got {_show(v)}")
    return v


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(v), "a number" if isinstance(v, int | float) else "null"
    )


def _show(v: Any) -> str:
    """A short rendering of a bad value for a message."""
    if isinstance(v, dict | list):
        return _kind(v)
    if isinstance(v, float):
        return "an infinite number" if math.isinf(v) else f"{v:g}"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**15:
        return f"{v:.3g}"
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


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
        raise _damaged(f"{where}.frames is {entry['frames']}, its file {rel} has {shape[0]}")
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
