"""What a project.json may hold: every field's type and range, checked before anything is built.

    doc = parse(data)                          # JSON, an object, a version this editor reads
    timeline, entries, clips = check(doc)      # an empty timeline, media entries, clips

Each refusal is one line, "damaged project: <field> ...", naming the first bad field by its path
(`clips[2].request.frames`): infinite or NaN numbers, wrong types, out-of-range values, nesting
too deep for the parser, ids that could name files outside the media folder, duplicate ids.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from engine.api import MAX_SEED, MODES, EngineError

from .timeline import Clip, Timeline

PROJECT_FILE = "project.json"
MEDIA_DIR = "media"
VERSION = 1
MAX_SIDE = 16384  # frame width/height
MAX_FPS = 1000.0
MAX_FRAMES = 1_000_000  # frames of one medium or one request
KINDS = ("generated", "video", "image")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # media and clip ids (media ids name files)


def damaged(what: str) -> EngineError:
    """The error for a project file that cannot be used, naming what is wrong."""
    return EngineError(f"damaged project: {what}")


def parse(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except RecursionError:
        raise damaged(f"{PROJECT_FILE} is nested too deeply") from None
    except UnicodeDecodeError:
        raise damaged(f"{PROJECT_FILE} is not UTF-8 text") from None
    except ValueError as exc:
        raise damaged(f"{PROJECT_FILE} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise damaged(f"{PROJECT_FILE} must hold an object, got {_kind(doc)}")
    version = doc.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise damaged(
            f"version {version} is from a newer STARFlow Studio (this one reads {VERSION})"
        )
    _int(doc, "version", "", 0, VERSION, default=0)
    return doc


def check(doc: dict[str, Any]) -> tuple[Timeline, list[dict[str, Any]], list[Clip]]:
    width = _int(doc, "width", "", 1, MAX_SIDE)
    height = _int(doc, "height", "", 1, MAX_SIDE)
    fps = _num(doc, "fps", "", MAX_FPS)
    entries = [_obj(e, f"media[{i}]") for i, e in enumerate(_list(doc, "media", ""))]
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"media[{i}]."
        mid = _id(e, "id", where, seen, "media id")
        if _str(e, "file", where) != f"{MEDIA_DIR}/{mid}.npz":
            raise damaged(f"{where}file must be {MEDIA_DIR}/{mid}.npz, got {_show(e['file'])}")
        _int(e, "frames", where, 1, MAX_FRAMES, default=None)
        _num(e, "fps", where, MAX_FPS, default=fps)
        if _str(e, "kind", where, "video") not in KINDS:
            raise damaged(f"{where}kind must be one of {', '.join(KINDS)}, got {_show(e['kind'])}")
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
        raise damaged(f"{name}: {exc}") from None


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
        raise damaged(f"{where}mode must be one of {', '.join(MODES)}, got {_show(mode)}")
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
        raise damaged(f"{where}{key} is missing")
    return default


def _int(d, key: str, where: str, low: int, high: int, default: Any = _MISSING) -> Any:
    v = _get(d, key, where, default)
    if v is default and default is not _MISSING:
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise damaged(f"{where}{key} must be a whole number, got {_show(v)}")
    if not low <= v <= high:
        raise damaged(f"{where}{key} must be from {low} to {high}, got {_show(v)}")
    return v


def _num(d, key: str, where: str, high: float, default: Any = _MISSING, zero: bool = False):
    """A finite number above 0 (from 0 with `zero`) up to `high`."""
    v = _get(d, key, where, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise damaged(f"{where}{key} must be a number, got {_show(v)}")
    v = float(v)
    if not (math.isfinite(v) and (v >= 0 if zero else v > 0) and v <= high):
        low = "from 0" if zero else "above 0"
        raise damaged(f"{where}{key} must be a number {low} up to {high:g}, got {_show(v)}")
    return v


def _str(d, key: str, where: str, default: Any = _MISSING) -> str:
    v = _get(d, key, where, default)
    if not isinstance(v, str):
        raise damaged(f"{where}{key} must be text, got {_show(v)}")
    return v


def _id(d, key: str, where: str, seen: set[str], what: str) -> str:
    v = _str(d, key, where)
    if not _ID.match(v):
        raise damaged(f"{where}{key} {_show(v)} is not a valid {what}")
    if v in seen:
        raise damaged(f"{what} {v} appears twice")
    seen.add(v)
    return v


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise damaged(f"{where} must be an object, got {_show(v)}")
    return v


def _list(d, key: str, where: str) -> list[Any]:
    v = _get(d, key, where, _MISSING)
    if not isinstance(v, list):
        raise damaged(f"{where}{key} must be a list, got {_show(v)}")
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
