"""The Shapes world (shared/shapes_world.md): scenes, exact rendering, captions and edits.

Frames are (T, 48, 64, 3) uint8 RGB. Coordinates are continuous pixels: pixel (i, j) covers
[j, j + 1) x [i, i + 1) and a pixel takes an object's colour when its centre (j + 0.5, i + 0.5)
is inside the shape (no anti-aliasing), so every pixel is exactly a palette colour. A shape of
size s lies inside the half-open s x s box around its centre, so it is exactly s pixels wide.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

log = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS, TRAIN_FRAMES = 64, 48, 16, 17
SPEED = 1.5  # px per frame, per moving axis
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (96, 96, 96),
    "white": (235, 235, 235),
    "navy": (16, 24, 72),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "yellow": (235, 220, 40),
    "green": (40, 200, 60),
    "cyan": (40, 210, 220),
    "blue": (50, 80, 235),
    "magenta": (220, 50, 210),
}
SHAPES = ("circle", "square", "triangle")
SIZES: dict[str, int] = {"small": 8, "large": 14}
DEFAULT_SIZE = "large"
MOTIONS = ("moves left", "moves right", "moves up", "moves down", "stays still", "bounces around")
VELOCITY: dict[str, tuple[float, float]] = {
    "moves left": (-SPEED, 0.0),
    "moves right": (SPEED, 0.0),
    "moves up": (0.0, -SPEED),
    "moves down": (0.0, SPEED),
    "stays still": (0.0, 0.0),
    "bounces around": (SPEED, SPEED),  # starts towards the bottom right
}
MAX_OBJECTS = 2


class EditError(ValueError):
    """An instruction that cannot apply to this scene (names an absent object, a colour in use...)."""


@dataclass(frozen=True)
class ObjectSpec:
    """An object as a caption names it."""

    shape: str
    colour: str
    size: str
    motion: str

    def describe(self) -> str:
        """'a small red circle' (the size is always written)."""
        return f"a {self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class ShapeObject(ObjectSpec):
    """An object of a scene: as named, and where it is at frame 0."""

    x: float  # centre at frame 0, pixels
    y: float


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[ShapeObject, ...]


# ---- rendering -----------------------------------------------------------------------------------


def inside(shape: str, side: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Bool mask of offsets (dx, dy) from the centre that lie inside `shape` of size `side`.

    The one definition of the shapes, shared by the renderer and the scorer's templates.
    """
    half = side / 2
    box = (dx >= -half) & (dx < half) & (dy >= -half) & (dy < half)
    if shape == "square":
        return box
    if shape == "circle":
        return box & (dx**2 + dy**2 <= half**2)
    if shape == "triangle":  # upright: apex at the top centre, base = the box's bottom edge
        return box & (np.abs(dx) <= (dy + half) / 2)
    raise ValueError(f"unknown shape {shape!r}")


def _reflect(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Positions of a point moving freely along p, bouncing between lo and hi (triangle wave)."""
    span = hi - lo
    q = np.mod(p - lo, 2 * span)
    return lo + np.where(q > span, 2 * span - q, q)


def centres(obj: ShapeObject, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) at frames t. Wrapping motions come back unwrapped (drawing applies the mod)."""
    vx, vy = VELOCITY[obj.motion]
    x, y = obj.x + vx * t, obj.y + vy * t
    if obj.motion == "bounces around":  # the centre stays half a box away from every border
        half = SIZES[obj.size] / 2
        x, y = _reflect(x, half, WIDTH - half), _reflect(y, half, HEIGHT - half)
    return x, y


def object_masks(obj: ShapeObject, frames: int, start: int = 0) -> np.ndarray:
    """(frames, 48, 64) bool: the object's pixels (before occlusion), wrapping at the edges."""
    xs, ys = centres(obj, np.arange(start, start + frames, dtype=np.float64))
    px, py = np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5
    dx = (px[None, None, :] - xs[:, None, None] + WIDTH / 2) % WIDTH - WIDTH / 2  # (t, 1, w)
    dy = (py[None, :, None] - ys[:, None, None] + HEIGHT / 2) % HEIGHT - HEIGHT / 2  # (t, h, 1)
    return inside(obj.shape, SIZES[obj.size], dx, dy)


def render(scene: Scene, frames: int, start: int = 0) -> np.ndarray:
    """Frames start .. start+frames-1 of the scene's timeline: (frames, 48, 64, 3) uint8 RGB.

    Later objects are drawn over earlier ones.
    """
    out = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
    out[:] = BACKGROUNDS[scene.background]
    for obj in scene.objects:
        out[object_masks(obj, frames, start)] = COLOURS[obj.colour]
    return out


class _Described(Protocol):
    background: str
    objects: Sequence[ObjectSpec]


def caption(scene: _Described) -> str:
    """The canonical caption of a scene or caption spec (sizes always written)."""
    parts = [f"{o.describe()} {o.motion}" for o in scene.objects]
    return " and ".join(parts) + f" on a {scene.background} background"


# ---- random scenes -------------------------------------------------------------------------------


def _boxes_overlap(a: ShapeObject, b: ShapeObject) -> bool:
    """Bounding boxes closer than 1 px (at frame 0)."""
    reach = (SIZES[a.size] + SIZES[b.size]) / 2 + 1
    return abs(a.x - b.x) < reach and abs(a.y - b.y) < reach


def place(
    rng: np.random.Generator,
    shape: str,
    colour: str,
    size: str,
    motion: str,
    others: Sequence[ShapeObject] = (),
    tries: int = 200,
) -> ShapeObject:
    """An object fully inside the frame at frame 0 (1 px margin), not overlapping `others`."""
    half = SIZES[size] / 2
    for _ in range(tries):
        x = float(rng.uniform(half + 1, WIDTH - half - 1))
        obj = ShapeObject(
            shape, colour, size, motion, x, float(rng.uniform(half + 1, HEIGHT - half - 1))
        )
        if not any(_boxes_overlap(obj, o) for o in others):
            return obj
    raise EditError("no room for another object")


def random_object(rng: np.random.Generator, others: Sequence[ShapeObject] = ()) -> ShapeObject:
    """A random object with a colour not in `others`, placed clear of them."""
    used = {o.colour for o in others}
    colour = str(rng.choice([c for c in COLOURS if c not in used]))
    shape, size = str(rng.choice(SHAPES)), str(rng.choice(list(SIZES)))
    return place(rng, shape, colour, size, str(rng.choice(MOTIONS)), others)


def random_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    """A spec-valid scene: 1-2 objects (random when n_objects is None), distinct colours, no
    overlap and fully inside the frame at frame 0."""
    n = n_objects if n_objects is not None else int(rng.integers(1, MAX_OBJECTS + 1))
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"a scene holds 1 or 2 objects, not {n}")
    objects: tuple[ShapeObject, ...] = ()
    for _ in range(n):
        objects += (random_object(rng, objects),)
    return Scene(str(rng.choice(list(BACKGROUNDS))), objects)


# ---- edits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """A parsed edit. add: shape, colour, size, motion; remove: shape, colour; recolour: shape,
    colour, new_colour; background: background. Unused fields are ''."""

    kind: str  # "add" | "remove" | "recolour" | "background"
    shape: str = ""
    colour: str = ""
    size: str = ""
    motion: str = ""
    new_colour: str = ""
    background: str = ""

    def text(self) -> str:
        """The canonical instruction (size and motion always written for add)."""
        if self.kind == "add":
            return f"add a {self.size} {self.colour} {self.shape} that {self.motion}"
        if self.kind == "remove":
            return f"remove the {self.colour} {self.shape}"
        if self.kind == "recolour":
            return f"make the {self.colour} {self.shape} {self.new_colour}"
        return f"change the background to {self.background}"


# ---- the word reader -----------------------------------------------------------------------------


class _Thing(Protocol):
    @property
    def shape(self) -> str: ...
    @property
    def colour(self) -> str: ...


T = TypeVar("T", bound=_Thing)


def _find(objects: Sequence[T], colour: str, shape: str) -> int:
    for i, o in enumerate(objects):
        if o.colour == colour and o.shape == shape:
            return i
    have = ", ".join(f"the {o.colour} {o.shape}" for o in objects)
    raise EditError(f"there is no {colour} {shape} to edit (the clip has {have})")


def _check_free_colour(objects: Sequence[_Thing], colour: str) -> None:
    if any(o.colour == colour for o in objects):
        raise EditError(f"{colour} is already in use: two objects may not share a colour")


def edit_objects(objects: Sequence[T], ins: Instruction) -> tuple[T, ...]:
    """The objects after a remove or recolour instruction (objects or ObjectSpecs alike)."""
    i = _find(objects, ins.colour, ins.shape)
    if ins.kind == "remove":
        if len(objects) < 2:
            raise EditError("cannot remove the only object: a clip holds one or two objects")
        return tuple(objects[:i]) + tuple(objects[i + 1 :])
    if ins.kind != "recolour":
        raise ValueError(f"edit_objects handles remove/recolour, not {ins.kind!r}")
    _check_free_colour(objects, ins.new_colour)
    new = dataclasses.replace(objects[i], colour=ins.new_colour)
    return tuple(objects[:i]) + (new,) + tuple(objects[i + 1 :])


def check_add(objects: Sequence[_Thing], ins: Instruction) -> None:
    """Raise EditError when the add instruction cannot apply to these objects."""
    if len(objects) >= MAX_OBJECTS:
        raise EditError("cannot add a third object: a clip holds at most two")
    _check_free_colour(objects, ins.colour)


def check_background(background: str, ins: Instruction) -> None:
    if ins.background == background:
        raise EditError(f"the background is already {background}")


def apply_instruction(
    scene: Scene, ins: Instruction, rng: np.random.Generator | None = None
) -> Scene:
    """The scene after a parsed instruction; only the named thing changes.

    An added object is placed at a random free spot drawn from `rng` (default: a fixed seed, so
    the result is deterministic).
    """
    if ins.kind == "background":
        check_background(scene.background, ins)
        return dataclasses.replace(scene, background=ins.background)
    if ins.kind == "add":
        check_add(scene.objects, ins)
        rng = rng if rng is not None else np.random.default_rng(0)
        new = place(rng, ins.shape, ins.colour, ins.size, ins.motion, scene.objects)
        return dataclasses.replace(scene, objects=scene.objects + (new,))
    return dataclasses.replace(scene, objects=edit_objects(scene.objects, ins))
