"""Scoring clips by the rule of shared/shapes_world.md ("what follows the prompt means").

Pixels are classified to the nearest palette colour; object colours only count within 45% of the
way to the next palette colour, so blends and noise stay unclassified. Each object colour with at
least MIN_PIXELS pixels after a 2x2 opening (which drops specks and 1-px seams) is an object. Its
shape, size and centre come from the best-fitting template (the renderer's own `inside`), searched
around its visible bounding box after rolling the frame so that an object wrapped across the edges
is whole. Pixels of other objects are "don't care", so an object partly behind another is still
recognised; where that leaves its centre ambiguous, the track takes the candidate nearest the
position interpolated from the frames where the object is unoccluded.

Interpretations of the spec (documented, tested):
- "under half of that on the other axis" is half of 0.75 px/frame (0.375).
- "stays still" is a net speed (both axes together) under 0.2 px/frame.
- "bounces around": over the window each axis spans at least 0.375 px/frame (half of 0.75: one
  reflection can halve the net displacement but never the extent).
- A captioned object that is not visible counts as found in a frame where another captioned object
  at least as large is found (it may be behind it), but each object must be seen in at least half
  of the frames for its motion to be judged.
- Centres are template (bounding-box) centres, the same convention as ShapeObject.x / y.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .captions import (
    CaptionError,
    CaptionSpec,
    Instruction,
    ObjectSpec,
    edit_spec,
    parse_caption,
    parse_instruction,
    spec_of,
    strip_prefix,
)
from .world import BACKGROUNDS, COLOURS, FPS, SHAPES, SIZES, TRAIN_FRAMES, Scene, inside

log = logging.getLogger(__name__)

NAMES = (*BACKGROUNDS, *COLOURS)  # palette order: backgrounds first
PALETTE = np.array([*BACKGROUNDS.values(), *COLOURS.values()], np.float32)  # (10, 3)
N_BG = len(BACKGROUNDS)
MAX_DISTANCE = 100.0  # RGB distance beyond which a pixel is no palette colour
MIN_PIXELS = 12
FOLLOW_RATE = 0.8
MIN_SPEED = 0.75  # px/frame on the captioned axis
MAX_CROSS = MIN_SPEED / 2  # px/frame on the other axis
MAX_STILL = 0.2  # px/frame
MIN_VISIBLE = 0.5  # fraction of frames an object must be seen in for its motion to be judged
KEEP_DISTANCE = 2.0  # px: an object an edit must keep stays this close, frame by frame
SHAPE_TOLERANCE = 0.05  # IoU: other shapes that fit this well are accepted for occluded objects
CENTRE_TOLERANCE = 0.02  # IoU: centres that fit this well are candidates for occluded objects
SIZE_HINT_BONUS = 0.02  # IoU: preference for the captioned size when fits tie
MIN_FIT = 0.6  # IoU: a blob no template fits this well has no shape (renders fit 0.79 or more)
BLURS = (0.0, 0.7, 1.0, 1.4)  # px: Gaussian softness of the edges templates are compared at
NEAR = 1  # px: centres tried around the visible box's middle
PATCH = 32  # px: the square searched for templates around an object (> 2 x the largest size)


# ---- pixels --------------------------------------------------------------------------------------


def _classify(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., H, W, 3) uint8 -> palette index (-1: none near) and nearest background, (..., H, W).

    Ties go to the earlier palette entry (backgrounds first)."""
    p = frames.reshape(-1, 3).T.astype(np.float32)  # (3, n)
    best = np.full(p.shape[1], np.inf, np.float32)
    idx = np.zeros(p.shape[1], np.int8)
    bg = idx
    for k, c in enumerate(PALETTE):
        if k == N_BG:
            bg = idx.copy()
        d2 = (p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2 + (p[2] - c[2]) ** 2
        better = d2 < best
        best[better], idx[better] = d2[better], k
    idx[best > MAX_DISTANCE**2] = -1
    return idx.reshape(frames.shape[:-1]), bg.reshape(frames.shape[:-1])


def classify(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (..., H, W) int8 index into NAMES, -1 where no colour is near."""
    return _classify(frames)[0]


@functools.lru_cache(maxsize=64)
def _roll_index(n: int, shift: int) -> np.ndarray:
    return (np.arange(n) - shift) % n


def _any_shift(m: np.ndarray, shifts: Sequence[int], axis: int) -> np.ndarray:
    """m OR m rolled by each of `shifts` along `axis` (wrapping)."""
    out = m.copy()
    for s in shifts:
        out |= np.take(m, _roll_index(m.shape[axis], s), axis=axis)
    return out


def dilate(m: np.ndarray) -> np.ndarray:
    """3x3 dilation of (..., H, W) bool masks, wrapping at the edges like the world."""
    return _any_shift(_any_shift(m, (-1, 1), -2), (-1, 1), -1)


def erode(m: np.ndarray) -> np.ndarray:
    """3x3 erosion of (..., H, W) bool masks, wrapping at the edges."""
    return ~dilate(~m)


def _open2(m: np.ndarray) -> np.ndarray:
    """2x2 opening of (..., H, W) bool masks: the pixels of every fully set 2x2 block."""
    e = ~_any_shift(_any_shift(~m, (-1,), -2), (-1,), -1)
    return _any_shift(_any_shift(e, (1,), -2), (1,), -1)


def _span(occupied: np.ndarray) -> tuple[int, int]:
    """(start, length) of the occupied cells of a circular 1-D mask: the complement of its
    longest empty run, so an object wrapped across the edge is one span."""
    n, cells = len(occupied), np.flatnonzero(occupied)
    if not (occupied[0] and occupied[-1]):  # not across the edge
        return int(cells[0]), int(cells[-1] - cells[0] + 1)
    if len(cells) == n:
        return 0, n
    empty = np.concatenate([~occupied, ~occupied]).astype(np.int8)
    d = np.diff(np.concatenate([[0], empty, [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    runs = np.minimum(ends - starts, n)
    k = int(runs.argmax())
    return int(ends[k] % n), int(n - runs[k])


# ---- one frame -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """An object found in a frame. x, y: its centre in pixels (as ShapeObject.x / y)."""

    colour: str
    shape: str
    size: str
    x: float
    y: float
    pixels: int
    fit: float  # IoU of the best template over the pixels not covered by other objects
    occluded: bool = False  # the best template runs under another object
    # the shapes that fit: best first, several only when occluded, none for a blob (fit < MIN_FIT)
    shapes: tuple[str, ...] = ()
    alternatives: tuple[tuple[float, float], ...] = ()  # centre offsets that fit as well


@dataclass(frozen=True)
class FrameDetection:
    background: str
    objects: tuple[Found, ...]

    def get(self, colour: str) -> Found | None:
        return next((o for o in self.objects if o.colour == colour), None)


SIZE_NAMES = tuple(SIZES)


@functools.lru_cache(maxsize=len(BLURS))
def _blur_matrix(blur: int) -> np.ndarray:
    """(P, P) Gaussian of BLURS[blur] px as a matrix: G @ t @ G.T blurs a template t."""
    d = np.arange(PATCH)[:, None] - np.arange(PATCH)[None, :]
    g = np.exp(-0.5 * (d / BLURS[blur]) ** 2)
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)


def _hard_templates(shape: str, side: int, x2: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """(n, P, P) float32: the shape centred at each (x2 / 2, y2 / 2) (doubled patch pixels)."""
    p = np.arange(PATCH) + 0.5
    dx, dy = p[None, None, :] - x2[:, None, None] / 2, p[None, :, None] - y2[:, None, None] / 2
    return inside(shape, side, dx, dy).astype(np.float32)


def _grid2(b0: int, b1: int, side: int, wide: bool) -> np.ndarray:
    """Candidate centres (doubled, so half pixels are integers) along one axis for a visible
    extent [b0, b1): wide, every centre whose box covers it; else its middle +- NEAR px."""
    if wide and b1 - b0 <= side:
        return np.arange(2 * b1 - side, 2 * b0 + side + 1)
    return b0 + b1 + np.arange(-2 * NEAR, 2 * NEAR + 1)


@dataclass(frozen=True)
class _Templates:
    cands: np.ndarray  # (n, 5) int rows: shape, size, blur, x2, y2
    soft: np.ndarray  # (n, P * P) float32 templates
    soft2: np.ndarray  # their squares
    hard: np.ndarray  # the same without blur


def _templates(box: tuple[int, int, int, int], wide: bool, blurs: tuple[int, ...]) -> _Templates:
    """The templates to try for an object whose visible box in the patch is `box`."""
    cands, soft, hard = [], [], []
    for z, side in enumerate(SIZES.values()):
        xs, ys = _grid2(box[0], box[1], side, wide), _grid2(box[2], box[3], side, wide)
        x2, y2 = (g.ravel() for g in np.meshgrid(xs, ys, indexing="ij"))
        for k, shape in enumerate(SHAPES):
            t = _hard_templates(shape, side, x2, y2)  # (n, P, P)
            for b in blurs:
                g = _blur_matrix(b) if BLURS[b] else None
                soft.append(t if g is None else g @ t @ g.T)
                hard.append(t)
                cands.append(
                    np.stack(
                        [np.full_like(x2, k), np.full_like(x2, z), np.full_like(x2, b), x2, y2], 1
                    )
                )
    n = sum(len(c) for c in cands)
    soft_m = np.concatenate(soft).reshape(n, -1)
    return _Templates(np.concatenate(cands), soft_m, soft_m**2, np.concatenate(hard).reshape(n, -1))


_narrow_templates = functools.lru_cache(maxsize=32)(_templates)  # few boxes recur when unoccluded


def _fit(
    alpha: np.ndarray, care: np.ndarray, under: np.ndarray, t: _Templates
) -> tuple[np.ndarray, np.ndarray]:
    """Soft IoU (from the soft Dice score) of each template with the object's coverage alpha
    (P, P) over the pixels `care`, and the number of template pixels `under` other objects."""
    c = care.ravel().astype(np.float32)
    a = alpha.ravel() * c
    dice = 2 * (t.soft @ a) / np.maximum(t.soft2 @ c + float(a @ a), 1e-6)
    return dice / (2 - dice), t.hard @ under.ravel().astype(np.float32)


def _alpha(rgb: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(P, P) coverage in [0, 1] of each pixel by the object: the position of its colour between
    the local background colour (0) and the object's own colour (1), so soft edges count by how
    much of the object they hold. Faint values (< 0.15: noise) are dropped.

    A mask with no pixel in the patch (a colour spread wider than the search square) covers
    nothing."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    px = rgb.astype(np.float32)
    own = np.median(px[mask], axis=0)
    base = np.median(px[background], axis=0) if background.any() else np.zeros(3, np.float32)
    axis = own - base
    alpha = np.clip((px - base) @ axis / max(float(axis @ axis), 1.0), 0.0, 1.0)
    return np.where(alpha < 0.15, 0.0, alpha).astype(np.float32)


def _blurs(alpha: np.ndarray) -> tuple[int, ...]:
    """Blur levels worth trying: only none when (almost) no pixel is partly covered."""
    seen = np.count_nonzero(alpha)
    soft = np.count_nonzero((alpha > 0) & (alpha < 0.85))
    return (0,) if soft <= 0.05 * seen else tuple(range(len(BLURS)))


def _patch(mask: np.ndarray, *more: np.ndarray) -> tuple[list[np.ndarray], tuple, tuple]:
    """Crop PATCH squares (wrapping) of mask and `more`, with the mask's visible box in the middle.

    Returns the crops, the visible box (x0, x1, y0, y1) in the patch and the offset (ox, oy) from
    patch to frame coordinates (before the mod)."""
    h, w = mask.shape
    (x0, lx), (y0, ly) = _span(mask.any(axis=0)), _span(mask.any(axis=1))
    ox, oy = x0 + lx // 2 - PATCH // 2, y0 + ly // 2 - PATCH // 2
    crop = np.ix_((np.arange(PATCH) + oy) % h, (np.arange(PATCH) + ox) % w)
    bx, by = PATCH // 2 - lx // 2, PATCH // 2 - ly // 2
    return [a[crop] for a in (mask, *more)], (bx, bx + lx, by, by + ly), (ox, oy)


def _ambiguity(cands: np.ndarray, iou: np.ndarray, i: int) -> tuple[tuple, tuple]:
    """Shapes (best first) and centre offsets that fit about as well as candidate i."""
    best = [float(iou[cands[:, 0] == k].max()) for k in range(len(SHAPES))]
    ok = [k for k in range(len(SHAPES)) if best[k] >= iou[i] - SHAPE_TOLERANCE]
    shapes = tuple(SHAPES[k] for k in sorted(ok, key=lambda k: k != cands[i, 0]))
    same = np.all(cands[:, :3] == cands[i, :3], axis=1)
    near = cands[same & (iou >= iou[i] - CENTRE_TOLERANCE), 3:] - cands[i, 3:]
    return shapes, tuple((x / 2, y / 2) for x, y in near.tolist())


def _found(
    frame: np.ndarray,
    idx: np.ndarray,
    m: np.ndarray,
    others: np.ndarray,
    touching: bool,
    colour: str,
    hint: str | None,
) -> Found:
    """Shape, size and centre of the object whose pixels are m (H, W) in frame (H, W, 3), with
    palette indices idx (H, W). others: pixels of the other objects found, "don't care" for the
    fit with a 1-px margin (their soft edges); touching: it touches one, so may be partly hidden.

    The blur of soft edges is chosen on a narrow search around the visible box; an object that
    touches another is then searched at every centre its visible part allows."""
    (mask, under, cls, rgb), box, (ox, oy) = _patch(m, others, idx, frame)
    alpha = _alpha(rgb, mask, (cls >= 0) & (cls < N_BG))
    care = ~(under | (dilate(under) & ~mask))
    t = _narrow_templates(box, False, _blurs(alpha))
    iou, hidden = _fit(alpha, care, under, t)
    if touching:
        t = _templates(box, True, (int(t.cands[int(iou.argmax()), 2]),))
        iou, hidden = _fit(alpha, care, under, t)
    hinted = np.array([z == hint for z in SIZE_NAMES])[t.cands[:, 1]]
    i = int(np.argmax(iou + SIZE_HINT_BONUS * hinted - 1e-3 * (hidden > 0)))
    shape, size = SHAPES[t.cands[i, 0]], SIZE_NAMES[t.cands[i, 1]]
    h, w = m.shape
    x, y = float((t.cands[i, 3] / 2 + ox) % w), float((t.cands[i, 4] / 2 + oy) % h)
    occluded = bool(hidden[i] > 0)
    shapes, offsets = _ambiguity(t.cands, iou, i) if occluded else ((shape,), ())
    fit = float(iou[i])
    if fit < MIN_FIT:
        shapes = ()  # a blob of the colour, not a shape
    return Found(colour, shape, size, x, y, int(m.sum()), fit, occluded, shapes, offsets)


def _backgrounds(bg: np.ndarray, objects: np.ndarray) -> list[str]:
    """Per frame, the most common nearest background among the pixels that are not objects."""
    votes = np.where(objects, N_BG, bg).reshape(len(bg), -1)  # (t, h * w); N_BG: no vote
    counts = np.apply_along_axis(np.bincount, 1, votes, minlength=N_BG + 1)[:, :N_BG]
    return [NAMES[int(k)] for k in counts.argmax(axis=1)]


def _cleaned(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per object colour c, from palette indices (T, H, W): (C, T, H, W) masks of its object's
    pixels (specks and 1-px seams of blended edges dropped) and (C, T) whether it is present."""
    raw = idx[None] == np.arange(N_BG, len(NAMES), dtype=np.int8)[:, None, None, None]
    core = _open2(raw)
    present = np.count_nonzero(core, axis=(2, 3)) >= MIN_PIXELS
    return raw & dilate(core) & present[..., None, None], present


def detect_clip(frames: np.ndarray, sizes: Mapping[str, str] | None = None) -> list[FrameDetection]:
    """detect() for every frame of a (T, H, W, 3) uint8 RGB clip."""
    idx, bg = _classify(frames)
    masks, present = _cleaned(idx)
    objects = masks.any(axis=0)  # (t, h, w) pixels of the objects found
    found: list[list[Found]] = [[] for _ in idx]
    for c, colour in enumerate(COLOURS):
        ts = np.flatnonzero(present[c])
        others = objects[ts] & ~masks[c, ts]
        touching = np.any(dilate(masks[c, ts]) & others, axis=(1, 2))
        hint = (sizes or {}).get(colour)
        for j, t in enumerate(ts):
            args = (frames[t], idx[t], masks[c, t], others[j], bool(touching[j]))
            found[t].append(_found(*args, colour, hint))
    backgrounds = _backgrounds(bg, idx >= N_BG)
    return [FrameDetection(b, tuple(f)) for b, f in zip(backgrounds, found, strict=True)]


def detect(frame: np.ndarray, sizes: Mapping[str, str] | None = None) -> FrameDetection:
    """Background and objects of one (H, W, 3) uint8 RGB frame.

    sizes: optional expected size per colour, used only to break ties (partly hidden objects)."""
    return detect_clip(frame[None], sizes)[0]


# ---- tracks --------------------------------------------------------------------------------------


def _unwrap(values: np.ndarray, span: int) -> np.ndarray:
    """Undo wrap-around jumps (a step of about a frame width is a wrap)."""
    step = np.diff(values)
    step -= span * np.round(step / span)
    return values[0] + np.concatenate([[0.0], np.cumsum(step)])


def _predict(ts: np.ndarray, xy: np.ndarray, t: float) -> np.ndarray:
    """Position at frame t from anchor positions xy (k, 2) at frames ts: interpolated inside,
    extrapolated linearly from the two nearest anchors outside."""
    if len(ts) == 1:
        return xy[0]
    if ts[0] <= t <= ts[-1]:
        return np.array([np.interp(t, ts, xy[:, 0]), np.interp(t, ts, xy[:, 1])])
    a, b = (0, 1) if t < ts[0] else (-2, -1)
    return xy[b] + (xy[b] - xy[a]) * (t - ts[b]) / (ts[b] - ts[a])


def track(dets: Sequence[FrameDetection], colour: str, width: int, height: int) -> np.ndarray:
    """(k, 3) rows (frame, x, y) for the frames where `colour` is found, unwrapped across the edges.

    Partly hidden frames take the candidate centre nearest the unoccluded frames' path."""
    seen = [(t, f) for t, d in enumerate(dets) if (f := d.get(colour)) is not None]
    if not seen:
        return np.zeros((0, 3))
    ts = np.array([t for t, _ in seen], np.float64)
    xy = np.stack([_unwrap(np.array([f.x for _, f in seen]), width),
                   _unwrap(np.array([f.y for _, f in seen]), height)], axis=1)  # fmt: skip
    anchor = np.array([not f.occluded for _, f in seen])
    for j, (t, f) in enumerate(seen):
        if f.occluded:
            alt = xy[j] + np.array(f.alternatives)  # (n, 2)
            if anchor.any():
                want = _predict(ts[anchor], xy[anchor], t)
                xy[j] = alt[np.argmin(((alt - want) ** 2).sum(1))]
            else:
                xy[j] = alt.mean(axis=0)
    return np.concatenate([ts[:, None], xy], axis=1)


# ---- captions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectVerdict:
    colour: str
    shape: str
    motion: str
    visible: int  # frames where it was found
    velocity: tuple[float, float]  # net displacement, px/frame (x, y)
    extent: tuple[float, float]  # range of the track per frame (x, y)
    moves_ok: bool


@dataclass(frozen=True)
class CaptionScore:
    frames_ok: tuple[bool, ...]  # frames with exactly the captioned objects and background
    objects: tuple[ObjectVerdict, ...]

    @property
    def frame_rate(self) -> float:
        return float(np.mean(self.frames_ok)) if self.frames_ok else 0.0

    @property
    def motions_ok(self) -> bool:
        """Every captioned object was seen often enough and moved the captioned way."""
        return all(o.moves_ok for o in self.objects)

    @property
    def follows(self) -> bool:
        return self.frame_rate >= FOLLOW_RATE and self.motions_ok


def motion_ok(motion: str, velocity: np.ndarray, extent: np.ndarray) -> bool:
    """The spec's motion rule on a track's net velocity and per-axis extent (px/frame)."""
    if motion == "stays still":
        return bool(np.hypot(*velocity) < MAX_STILL)
    if motion == "bounces around":
        return bool(np.all(extent >= MIN_SPEED / 2))
    axis = 0 if motion in ("moves left", "moves right") else 1
    sign = -1.0 if motion in ("moves left", "moves up") else 1.0
    return bool(sign * velocity[axis] >= MIN_SPEED and abs(velocity[1 - axis]) < MAX_CROSS)


def _verdict(
    dets: Sequence[FrameDetection], obj: ObjectSpec, width: int, height: int
) -> ObjectVerdict:
    p = track(dets, obj.colour, width, height)
    span = p[-1, 0] - p[0, 0] if len(p) else 0.0
    if len(p) < max(2, MIN_VISIBLE * len(dets)) or span <= 0:
        return ObjectVerdict(
            obj.colour, obj.shape, obj.motion, len(p), (0.0, 0.0), (0.0, 0.0), False
        )
    velocity = (p[-1, 1:] - p[0, 1:]) / span
    extent = (p[:, 1:].max(axis=0) - p[:, 1:].min(axis=0)) / span
    ok = motion_ok(obj.motion, velocity, extent)
    v, e = (float(velocity[0]), float(velocity[1])), (float(extent[0]), float(extent[1]))
    return ObjectVerdict(obj.colour, obj.shape, obj.motion, len(p), v, e, ok)


def frame_matches(det: FrameDetection, spec: CaptionSpec) -> bool:
    """The right background, no uncaptioned object, every captioned one with its shape (or hidden
    behind another captioned object at least as large)."""
    wanted = {o.colour for o in spec.objects}
    if det.background != spec.background or any(f.colour not in wanted for f in det.objects):
        return False
    for o in spec.objects:
        f = det.get(o.colour)
        if f is None:
            if not any(SIZES[g.size] >= SIZES[o.size] for g in det.objects):
                return False
        elif o.shape not in f.shapes:
            return False
    return True


def _spec(caption: str | CaptionSpec | Scene) -> CaptionSpec:
    """A caption (an '(extend) ' prefix is allowed), spec or scene -> CaptionSpec."""
    if isinstance(caption, Scene):
        return spec_of(caption)
    if isinstance(caption, CaptionSpec):
        return caption
    task, text = strip_prefix(caption)
    if task == "v2v":
        raise CaptionError("a (v2v) instruction is not a caption")
    return parse_caption(text)


def _score(
    dets: Sequence[FrameDetection], spec: CaptionSpec, width: int, height: int
) -> CaptionScore:
    frames_ok = tuple(frame_matches(d, spec) for d in dets)
    objects = tuple(_verdict(dets, o, width, height) for o in spec.objects)
    return CaptionScore(frames_ok, objects)


def _detections(frames: np.ndarray, spec: CaptionSpec) -> list[FrameDetection]:
    return detect_clip(frames, {o.colour: o.size for o in spec.objects})


def score_caption(frames: np.ndarray, caption: str | CaptionSpec) -> CaptionScore:
    """Per-frame matches and per-object motion verdicts of a (T, H, W, 3) uint8 RGB clip."""
    spec = _spec(caption)
    return _score(_detections(frames, spec), spec, frames.shape[2], frames.shape[1])


def follows_caption(frames: np.ndarray, caption: str | CaptionSpec) -> bool:
    """The spec's rule: >= 80% of frames match and every object moves the captioned way."""
    return score_caption(frames, caption).follows


def window_starts(n: int, window: int = TRAIN_FRAMES) -> list[int]:
    """Windows of `window` frames from the start; a last one flush with the end covers the rest."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, window))
    return starts + ([n - window] if starts[-1] + window < n else [])


def window_scores(
    frames: np.ndarray, caption: str | CaptionSpec, window: int = TRAIN_FRAMES
) -> list[CaptionScore]:
    """score_caption for each window of a long clip (detections are computed once)."""
    spec = _spec(caption)
    dets = _detections(frames, spec)
    h, w = frames.shape[1:3]
    return [_score(dets[s : s + window], spec, w, h) for s in window_starts(len(frames), window)]


def score_windows(
    frames: np.ndarray, caption: str | CaptionSpec, window: int = TRAIN_FRAMES
) -> list[bool]:
    """Whether each window of a long clip follows the caption."""
    return [s.follows for s in window_scores(frames, caption, window)]


# ---- pixels compared -----------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8 images/clips, capped at 100 (identical or empty mask).

    mask: bool, shaped like a or like a without its channel axis."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        if mask.shape not in (a.shape, a.shape[:-1]):
            raise ValueError(f"mask of shape {mask.shape} for images of shape {a.shape}")
        diff = diff[mask]
    mse = float((diff**2).mean()) if diff.size else 0.0
    return 100.0 if mse <= 1e-10 else min(100.0, float(10 * np.log10(255.0**2 / mse)))


def background_drift(frames: np.ndarray, fps: int = FPS) -> float:
    """Mean absolute RGB difference of the background colour estimate (median of the pixels not
    classified as objects) between the first and the last second."""

    def estimate(clip: np.ndarray) -> np.ndarray:
        px = clip[classify(clip) < N_BG]
        return np.median(px if len(px) else clip.reshape(-1, 3), axis=0)

    return float(np.abs(estimate(frames[:fps]) - estimate(frames[-fps:])).mean())


# ---- edits ---------------------------------------------------------------------------------------


def _instruction(instruction: str | Instruction) -> Instruction:
    if isinstance(instruction, Instruction):
        return instruction
    task, text = strip_prefix(instruction)
    if task == "extend":
        raise CaptionError("an (extend) caption is not an edit instruction")
    return parse_instruction(text)


def _kept(spec: CaptionSpec, ins: Instruction) -> list[tuple[str, str]]:
    """(colour in the source, colour in the result) of each object the edit must keep in place."""
    pairs = [(o.colour, o.colour) for o in spec.objects]
    if ins.kind == "remove":
        return [p for p in pairs if p[0] != ins.colour]
    if ins.kind == "recolour":
        return [(c, ins.new_colour if c == ins.colour else c) for c, _ in pairs]
    return pairs


def _stays(src: np.ndarray, res: np.ndarray, n: int, width: int, height: int) -> bool:
    """Two tracks (frame, x, y) agree within KEEP_DISTANCE in >= 80% of the frames both see,
    and both see the object in at least half of the n frames."""
    a = {int(t): (x, y) for t, x, y in src}
    both = [(a[int(t)], (x, y)) for t, x, y in res if int(t) in a]
    if len(both) < max(1, MIN_VISIBLE * n):
        return False
    d = np.array([[p[0] - q[0], p[1] - q[1]] for p, q in both])
    d -= np.array([width, height]) * np.round(d / [width, height])
    return float(np.mean(np.hypot(d[:, 0], d[:, 1]) <= KEEP_DISTANCE)) >= FOLLOW_RATE


@dataclass(frozen=True)
class EditScore:
    result: CaptionScore  # the result scored against the caption of the edited source
    kept: tuple[bool, ...]  # per object the edit must keep: it stayed in place, frame by frame
    preservation_psnr: float

    @property
    def follows(self) -> bool:
        """The result follows the caption of the edited source."""
        return self.result.follows

    @property
    def succeeds(self) -> bool:
        return self.follows and all(self.kept)


def score_edit(
    source: np.ndarray,
    result: np.ndarray,
    instruction: str | Instruction,
    source_caption: str | CaptionSpec | Scene,
) -> EditScore:
    """Score a video-to-video edit. source, result: (T, H, W, 3) uint8 RGB (compared over the
    shorter length); instruction: with or without the '(v2v) ' prefix.

    Raises CaptionError / EditError when the instruction does not parse or apply to the source."""
    src_spec, ins = _spec(source_caption), _instruction(instruction)
    target = edit_spec(src_spec, ins)
    n = min(len(source), len(result))
    source, result = source[:n], result[:n]
    h, w = source.shape[1:3]
    src_dets, res_dets = _detections(source, src_spec), _detections(result, target)
    kept = tuple(
        _stays(track(src_dets, a, w, h), track(res_dets, b, w, h), n, w, h)
        for a, b in _kept(src_spec, ins)
    )
    scored = _score(res_dets, target, w, h)
    return EditScore(scored, kept, preservation_psnr(source, result, ins))


def preservation_psnr(
    source: np.ndarray,
    result: np.ndarray,
    instruction: str | Instruction,
    source_scene_or_caption: str | CaptionSpec | Scene | None = None,
) -> float:
    """PSNR of result against source over what the edit must not touch: the pixels not covered by
    the edited object(s) in either clip, grown by 1 px for soft edges; for a background change,
    the object pixels of either clip, shrunk by 1 px, instead. Compared over the shorter length.

    source_scene_or_caption, when given, validates the instruction against the source."""
    ins = _instruction(instruction)
    if source_scene_or_caption is not None:
        edit_spec(_spec(source_scene_or_caption), ins)
    n = min(len(source), len(result))
    source, result = source[:n], result[:n]
    src, res = classify(source), classify(result)
    if ins.kind == "background":
        mask = erode((src >= N_BG) | (res >= N_BG))
    else:
        codes = [NAMES.index(c) for c in (ins.colour, ins.new_colour) if c]
        mask = ~dilate(np.isin(src, codes) | np.isin(res, codes))
    if not mask.any():
        log.debug("preservation_psnr: no pixel to compare for %r", ins)
    return psnr(source, result, mask)
