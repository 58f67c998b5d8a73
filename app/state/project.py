"""Project folders: `project.json` plus one lossless `media/<id>.npz` per medium.

    save_project(timeline.snapshot(), folder, model="...")
    timeline = load_project(folder)

Media never change once made, so a medium's file is written once and reused by later saves.
Every file is written to a temporary name and renamed into place, project.json last: a
failed save (a full disk included) raises EngineError and leaves the previous project intact.
"""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.api import EngineError
from engine.media import atomic_write

from .timeline import Clip, Media, Snapshot, Timeline

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
MEDIA_DIR = "media"
VERSION = 1


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


def save_project(snap: Snapshot, folder: str | Path, **extra: Any) -> float:
    """Write a snapshot into `folder` (created if needed); returns the save time (epoch s)."""
    folder = Path(folder)
    try:
        (folder / MEDIA_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(
            f"cannot create the project folder {folder}: {exc.strerror or exc}"
        ) from exc
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
    atomic_write(folder / PROJECT_FILE, lambda f: f.write(data))
    _prune(folder, set(used))
    return doc["saved"]


def _write_media(media: Media, path: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=media.frames)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def _prune(folder: Path, used: set[str]) -> None:
    """Remove media files no clip uses any more (after project.json names the new set)."""
    for path in (folder / MEDIA_DIR).glob("*.npz"):
        if path.stem not in used:
            path.unlink(missing_ok=True)


def load_project(folder: str | Path) -> tuple[Timeline, dict[str, Any]]:
    """Read a project folder -> (timeline, the whole project.json). Raises EngineError naming
    what is missing or damaged."""
    folder = Path(folder)
    path = folder / PROJECT_FILE
    if not path.is_file():
        raise EngineError(f"{folder} is not a STARFlow Studio project (no {PROJECT_FILE})")
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or int(doc.get("version", 0)) > VERSION:
            raise ValueError("unknown project version")
        timeline = Timeline(int(doc["width"]), int(doc["height"]), float(doc["fps"]))
        entries = list(doc["media"])
        clips = [Clip.from_dict(c) for c in doc["clips"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{path} is damaged: {exc}") from exc
    for entry in entries:
        timeline.put_media(_read_media(folder, entry, timeline))
    for clip in clips:
        try:
            timeline.clips.append(clip)
            n = len(timeline.media[clip.media])
        except KeyError:
            raise EngineError(f"{path} is damaged: clip {clip.id} names missing media") from None
        if not 0 <= clip.start < clip.stop <= n:
            raise EngineError(
                f"{path} is damaged: clip {clip.id} range {clip.start}:{clip.stop} outside its media"
            )
    timeline.selected = doc.get("selected") if timeline.clip(doc.get("selected")) else None
    timeline.playhead = max(0, min(int(doc.get("playhead", 0)), max(timeline.duration - 1, 0)))
    return timeline, doc


def _read_media(folder: Path, entry: dict[str, Any], timeline: Timeline) -> Media:
    try:
        mid, rel = str(entry["id"]), str(entry["file"])
    except (KeyError, TypeError) as exc:
        raise EngineError(f"{folder / PROJECT_FILE} is damaged: bad media entry") from exc
    path = folder / rel
    if not path.is_file() or path.resolve().parent != (folder / MEDIA_DIR).resolve():
        raise EngineError(f"project media file missing: {rel}")
    try:
        with np.load(path, allow_pickle=False) as z:
            frames = z["frames"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EngineError(f"project media file damaged: {rel} ({exc})") from exc
    if (
        frames.ndim != 4
        or frames.shape[1:] != (timeline.height, timeline.width, 3)
        or frames.dtype != np.uint8
    ):
        raise EngineError(
            f"project media file damaged: {rel} has shape {frames.shape} {frames.dtype}"
        )
    if "frames" in entry and int(entry["frames"]) != len(frames):
        raise EngineError(
            f"project media file damaged: {rel} has {len(frames)} frames, expected {entry['frames']}"
        )
    return Media(
        mid,
        frames,
        float(entry.get("fps", timeline.fps)),
        str(entry.get("kind", "video")),
        str(entry.get("name", "")),
    )
