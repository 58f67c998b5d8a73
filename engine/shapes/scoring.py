"""Scoring generated clips by the spec's rule ("what follows the prompt means").

Each pixel is classified to the nearest palette colour; each object colour present with enough
pixels is an object, its shape told by how much of its bounding box it fills (square ~1,
circle ~0.79, triangle ~0.5), its position by its centroid (unwrapped across frame edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .captions import parse_caption
from .world import BACKGROUNDS, COLOURS, HEIGHT, SHAPES, SIZES, WIDTH, shape_mask

NAMES = list(BACKGROUNDS) + list(COLOURS)
PALETTE = np.array(list(BACKGROUNDS.values()) + list(COLOURS.values()), np.float32)
N_BG = len(BACKGROUNDS)
MIN_PIXELS = 12
MAX_DISTANCE = 90.0


@dataclass(frozen=True)
class Found:
    colour: str
    shape: str
    x: float
    y: float
    pixels: int


@dataclass(frozen=True)
class FrameDetection:
    background: str
    objects: tuple[Found, ...]


def classify(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) palette index, -1 where no palette colour is near."""
    d = np.linalg.norm(frame[:, :, None, :].astype(np.float32) - PALETTE, axis=-1)
    idx = d.argmin(-1)
    idx[d.min(-1) > MAX_DISTANCE] = -1
    return idx


def _unwrap_axis(mask_any: np.ndarray) -> int:
    """Roll that brings an object split across the edges together (0 if it is not split)."""
    n = len(mask_any)
    if mask_any[0] and mask_any[-1] and not mask_any.all():
        gaps = np.nonzero(~mask_any)[0]
        return n - gaps[-1] - 1
    return 0


def _shape(mask: np.ndarray) -> tuple[str, float, float]:
    rx = _unwrap_axis(mask.any(axis=0))
    ry = _unwrap_axis(mask.any(axis=1))
    m = np.roll(mask, (ry, rx), axis=(0, 1))
    ys, xs = np.nonzero(m)
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2  # bounding-box centre

    def iou(candidate: tuple[str, str]) -> float:
        t = shape_mask(candidate[0], candidate[1], cx, cy)
        return (t & m).sum() / max((t | m).sum(), 1)

    shape = max(((sh, sz) for sh in SHAPES for sz in SIZES), key=iou)[0]
    return shape, (xs.mean() + 0.5 - rx) % WIDTH, (ys.mean() + 0.5 - ry) % HEIGHT


def detect(frame: np.ndarray) -> FrameDetection:
    idx = classify(frame)
    counts = np.bincount(idx[idx >= 0].ravel(), minlength=len(NAMES))
    background = NAMES[int(counts[:N_BG].argmax())]
    found = []
    for i in range(N_BG, len(NAMES)):
        if counts[i] >= MIN_PIXELS:
            shape, x, y = _shape(idx == i)
            found.append(Found(NAMES[i], shape, float(x), float(y), int(counts[i])))
    return FrameDetection(background, tuple(found))


@dataclass(frozen=True)
class CaptionScore:
    frame_rate: float  # fraction of frames with exactly the captioned objects and background
    motions_ok: tuple[bool, ...]

    @property
    def follows(self) -> bool:
        return self.frame_rate >= 0.8 and all(self.motions_ok)


def _track(dets: list[FrameDetection], colour: str) -> np.ndarray:
    pts = [(o.x, o.y) for d in dets for o in d.objects if o.colour == colour]
    if len(pts) < 2:
        return np.zeros((0, 2))
    p = np.array(pts)
    for axis, span in ((0, WIDTH), (1, HEIGHT)):
        step = np.diff(p[:, axis])
        step -= span * np.round(step / span)  # a jump of about a frame width is a wrap
        p[:, axis] = p[0, axis] + np.concatenate([[0], np.cumsum(step)])
    return p


def motion_ok(track: np.ndarray, motion: str, size: str) -> bool:
    if len(track) < 2:
        return False
    n = len(track) - 1
    net = (track[-1] - track[0]) / n
    if motion == "stays still":
        return bool(np.all(np.abs(net) < 0.2))
    if motion == "bounces around":
        travel = np.abs(np.diff(track, axis=0)).mean(axis=0)
        return bool(np.all(travel >= 0.75))
    axis = 0 if motion in ("moves left", "moves right") else 1
    sign = -1 if motion in ("moves left", "moves up") else 1
    along, across = sign * net[axis], abs(net[1 - axis])
    return bool(along >= 0.75 and across < along / 2)


def score_caption(frames: np.ndarray, caption: str) -> CaptionScore:
    spec = parse_caption(caption)
    dets = [detect(f) for f in frames]
    want = {(o.colour, o.shape) for o in spec.objects}
    good = [d.background == spec.background and {(o.colour, o.shape) for o in d.objects} == want
            for d in dets]
    motions = tuple(motion_ok(_track(dets, o.colour), o.motion, o.size) for o in spec.objects)
    return CaptionScore(float(np.mean(good)), motions)


def follows_caption(frames: np.ndarray, caption: str) -> bool:
    return score_caption(frames, caption).follows


def score_windows(frames: np.ndarray, caption: str, window: int = 17) -> list[bool]:
    return [follows_caption(frames[s:s + window], caption)
            for s in range(0, len(frames) - window + 1, window)]


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        diff = diff[mask]
    mse = float((diff**2).mean()) if diff.size else 0.0
    return 100.0 if mse <= 1e-10 else min(100.0, 10 * np.log10(255.0**2 / mse))


def background_drift(frames: np.ndarray, fps: int = 16) -> float:
    """Mean absolute RGB difference of the background colour between the first and last second."""
    def bg(clip: np.ndarray) -> np.ndarray:
        px = clip.reshape(-1, 3).astype(np.int32)
        keys, counts = np.unique(px // 8, axis=0, return_counts=True)
        sel = np.all(px // 8 == keys[counts.argmax()], axis=1)
        return px[sel].mean(axis=0)
    return float(np.abs(bg(frames[:fps]) - bg(frames[-fps:])).mean())


def _instruction_scene_masks(frames: np.ndarray, colours: set[str]) -> np.ndarray:
    idx = np.stack([classify(f) for f in frames])
    out = np.zeros(idx.shape, bool)
    for c in colours:
        out |= idx == NAMES.index(c)
    return out


def edit_succeeds(result: np.ndarray, target_caption: str) -> bool:
    """An edit succeeds when the result follows the caption of the edited scene."""
    return follows_caption(result, target_caption)


def preservation_psnr(source: np.ndarray, result: np.ndarray, edited_colours: set[str],
                      background_changed: bool) -> float:
    """PSNR against the source over what the edit should not touch: every pixel outside the edited
    objects (in either clip); for a background change, the object pixels instead."""
    n = min(len(source), len(result))
    source, result = source[:n], result[:n]
    if background_changed:
        objects = _instruction_scene_masks(source, set(COLOURS))
        return psnr(source, result, objects)
    touched = _instruction_scene_masks(source, edited_colours) | _instruction_scene_masks(result, edited_colours)
    return psnr(source, result, ~touched)


__all__ = ["SIZES", "CaptionScore", "FrameDetection", "background_drift", "detect", "edit_succeeds",
           "follows_caption", "preservation_psnr", "psnr", "score_caption", "score_windows"]
