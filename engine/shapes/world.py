"""The Shapes world (shared/shapes_world.md): scenes, exact rendering, captions and edits.

Frames are (T, 48, 64, 3) uint8 RGB; pixels take an object's colour when their centre is inside
the shape (no anti-aliasing), so every pixel is exactly a palette colour.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT, FPS, TRAIN_FRAMES = 64, 48, 16, 17
SPEED = 1.5
BACKGROUNDS = {"black": (0, 0, 0), "gray": (96, 96, 96), "white": (235, 235, 235), "navy": (16, 24, 72)}
COLOURS = {"red": (230, 40, 40), "yellow": (235, 220, 40), "green": (40, 200, 60),
           "cyan": (40, 210, 220), "blue": (50, 80, 235), "magenta": (220, 50, 210)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 8, "large": 14}
MOTIONS = ("moves left", "moves right", "moves up", "moves down", "stays still", "bounces around")
VELOCITY = {"moves left": (-SPEED, 0.0), "moves right": (SPEED, 0.0), "moves up": (0.0, -SPEED),
            "moves down": (0.0, SPEED), "stays still": (0.0, 0.0), "bounces around": (SPEED, SPEED)}


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    motion: str
    x: float  # centre at frame 0, pixels
    y: float

    def describe(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[ShapeObject, ...]


def _reflect(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Positions of a point bouncing between lo and hi (triangle wave)."""
    span = hi - lo
    q = np.mod(p - lo, 2 * span)
    return lo + np.where(q > span, 2 * span - q, q)


def centres(obj: ShapeObject, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) at frames t; wrapping motions are returned unwrapped (mod is applied when drawing)."""
    vx, vy = VELOCITY[obj.motion]
    x, y = obj.x + vx * t, obj.y + vy * t
    if obj.motion == "bounces around":
        half = SIZES[obj.size] / 2
        x, y = _reflect(x, half, WIDTH - half), _reflect(y, half, HEIGHT - half)
    return x, y


_PX = np.arange(WIDTH) + 0.5
_PY = np.arange(HEIGHT) + 0.5


def shape_mask(shape: str, size: str, cx: float, cy: float) -> np.ndarray:
    """(48, 64) bool: pixel centres inside the shape centred at (cx, cy), wrapping at the edges."""
    s = SIZES[size]
    dx = (_PX[None, :] - cx + WIDTH / 2) % WIDTH - WIDTH / 2  # nearest wrapped offset
    dy = (_PY[:, None] - cy + HEIGHT / 2) % HEIGHT - HEIGHT / 2
    if shape == "circle":
        return dx**2 + dy**2 <= (s / 2) ** 2
    if shape == "square":
        return (np.abs(dx) <= s / 2) & (np.abs(dy) <= s / 2)
    depth = dy + s / 2  # distance below the apex
    return (depth >= 0) & (depth <= s) & (np.abs(dx) <= depth / 2)


def render(scene: Scene, frames: int, start: int = 0) -> np.ndarray:
    """Frames start .. start+frames-1 of the scene: (frames, 48, 64, 3) uint8 RGB."""
    t = np.arange(start, start + frames, dtype=np.float64)
    out = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
    out[:] = BACKGROUNDS[scene.background]
    for obj in scene.objects:
        xs, ys = centres(obj, t)
        colour = np.array(COLOURS[obj.colour], np.uint8)
        for i in range(frames):
            out[i][shape_mask(obj.shape, obj.size, xs[i], ys[i])] = colour
    return out


def caption(scene: Scene) -> str:
    parts = [f"{o.describe()} {o.motion}" for o in scene.objects]
    return " and ".join(parts) + f" on a {scene.background} background"


def _boxes_overlap(a: ShapeObject, b: ShapeObject) -> bool:
    reach = (SIZES[a.size] + SIZES[b.size]) / 2 + 1
    return abs(a.x - b.x) < reach and abs(a.y - b.y) < reach


def place(rng: np.random.Generator, shape: str, colour: str, size: str, motion: str,
          others: tuple[ShapeObject, ...] = (), tries: int = 200) -> ShapeObject:
    """An object fully inside the frame at frame 0, not overlapping `others`."""
    half = SIZES[size] / 2
    for _ in range(tries):
        obj = ShapeObject(shape, colour, size, motion, float(rng.uniform(half + 1, WIDTH - half - 1)),
                          float(rng.uniform(half + 1, HEIGHT - half - 1)))
        if not any(_boxes_overlap(obj, o) for o in others):
            return obj
    raise ValueError("no room for another object")


def random_object(rng: np.random.Generator, others: tuple[ShapeObject, ...] = ()) -> ShapeObject:
    used = {o.colour for o in others}
    colour = str(rng.choice([c for c in COLOURS if c not in used]))
    return place(rng, str(rng.choice(SHAPES)), colour, str(rng.choice(list(SIZES))),
                 str(rng.choice(MOTIONS)), others)


def random_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    n = n_objects or int(rng.integers(1, 3))
    objects: tuple[ShapeObject, ...] = ()
    for _ in range(n):
        objects += (random_object(rng, objects),)
    return Scene(str(rng.choice(list(BACKGROUNDS))), objects)


def random_edit(scene: Scene, rng: np.random.Generator) -> tuple[str, Scene]:
    """A spec instruction and the scene where only the named thing changed."""
    kinds = ["recolour", "background"] + (["remove"] if len(scene.objects) == 2 else ["add"])
    kind = str(rng.choice(kinds))
    if kind == "background":
        bg = str(rng.choice([b for b in BACKGROUNDS if b != scene.background]))
        return f"change the background to {bg}", dataclasses.replace(scene, background=bg)
    if kind == "add":
        obj = random_object(rng, scene.objects)
        text = f"add {obj.describe()}" + ("" if obj.motion == "stays still" and rng.random() < 0.5 else f" that {obj.motion}")
        return text, dataclasses.replace(scene, objects=scene.objects + (obj,))
    target = scene.objects[int(rng.integers(len(scene.objects)))]
    if kind == "remove":
        rest = tuple(o for o in scene.objects if o is not target)
        return f"remove the {target.colour} {target.shape}", dataclasses.replace(scene, objects=rest)
    used = {o.colour for o in scene.objects}
    new = str(rng.choice([c for c in COLOURS if c not in used]))
    objs = tuple(dataclasses.replace(o, colour=new) if o is target else o for o in scene.objects)
    return f"make the {target.colour} {target.shape} {new}", dataclasses.replace(scene, objects=objs)
