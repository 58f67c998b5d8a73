"""The caption and edit-instruction grammar of shared/shapes_world.md, parsed strictly.

Anything outside the grammar (upper case, extra spaces, unknown words, a third object, two
objects of one colour) raises CaptionError naming what was expected at which word.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from .world import (
    BACKGROUNDS,
    COLOURS,
    DEFAULT_SIZE,
    MAX_OBJECTS,
    MOTIONS,
    SHAPES,
    SIZES,
    EditError,
    Instruction,
    ObjectSpec,
    Scene,
    ShapeObject,
    apply_instruction,
    caption,
    check_add,
    check_background,
    edit_objects,
    place,
    random_object,
    random_scene,
)

TASKS = ("", "extend", "v2v")  # text to video / image to video, extend, video to video edit
VERBS = ("add", "remove", "make", "change")


class CaptionError(ValueError):
    """Text outside the grammar; the message says what was expected at which word."""


@dataclass(frozen=True)
class CaptionSpec:
    background: str
    objects: tuple[ObjectSpec, ...]

    def text(self) -> str:
        """The canonical caption (sizes always written)."""
        return caption(self)


def _one_of(name: str, options: Collection[str]) -> str:
    return f"{name} ({', '.join(options)})"


class _Words:
    """Reads the words of a text one by one; `take` raises CaptionError on anything unexpected."""

    def __init__(self, text: str, what: str) -> None:
        if not text:
            raise CaptionError(f"{what} is empty")
        if text != text.lower():
            raise CaptionError(f"{what} must be lower case: {text!r}")
        if text != text.strip() or "  " in text or any(c in text for c in "\t\n\r"):
            raise CaptionError(f"{what} must be words separated by single spaces: {text!r}")
        self.text, self.words, self.i = text, text.split(" "), 0

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def fail(self, expected: str) -> CaptionError:
        word = self.peek()
        got = "the end" if word is None else repr(word)
        return CaptionError(f"expected {expected} at word {self.i + 1}, got {got} in {self.text!r}")

    def take(self, options: Collection[str], expected: str) -> str:
        word = self.peek()
        if word is None or word not in options:
            raise self.fail(expected)
        self.i += 1
        return word

    def keywords(self, *words: str) -> None:
        for word in words:
            self.take({word}, repr(word))

    def end(self, expected: str = "the end") -> None:
        if self.peek() is not None:
            raise self.fail(expected)


def _motion(w: _Words) -> str:
    first = w.take(
        {m.split()[0] for m in MOTIONS}, "a motion (moves / stays still / bounces around)"
    )
    rest = [m.split()[1] for m in MOTIONS if m.startswith(first + " ")]
    return f"{first} {w.take(rest, _one_of(f'the rest of {first!r}', rest))}"


def _object(w: _Words) -> tuple[str, str, str]:
    """object := "a " [size " "] colour " " shape; returns (shape, colour, size)."""
    w.take({"a"}, "'a'")
    if w.peek() in SIZES:
        size, expected = w.take(SIZES, "a size"), _one_of("a colour", COLOURS)
    else:
        size, expected = DEFAULT_SIZE, _one_of("a colour or size", [*COLOURS, *SIZES])
    colour = w.take(COLOURS, expected)
    return w.take(SHAPES, _one_of("a shape", SHAPES)), colour, size


# ---- captions ------------------------------------------------------------------------------------


def _check_colours(objects: tuple[ObjectSpec, ...]) -> None:
    colours = [o.colour for o in objects]
    for c in set(colours):
        if colours.count(c) > 1:
            raise CaptionError(f"two objects may not have the same colour ({c})")


def parse_caption(text: str) -> CaptionSpec:
    """A caption (no task prefix) -> CaptionSpec; sizes default to large."""
    w = _Words(text, "a caption")
    if w.peek() in {"(extend)", "(v2v)"}:
        raise w.fail("'a' (remove the task prefix with strip_prefix first)")
    objects: tuple[ObjectSpec, ...] = ()
    while True:
        shape, colour, size = _object(w)
        objects += (ObjectSpec(shape, colour, size, _motion(w)),)
        if w.peek() != "and":
            break
        if len(objects) == MAX_OBJECTS:
            raise w.fail("'on' (a caption names at most two objects)")
        w.keywords("and")
    expected = "'on'" if len(objects) == MAX_OBJECTS else "'and' or 'on'"
    w.take({"on"}, expected)
    w.keywords("a")
    background = w.take(BACKGROUNDS, _one_of("a background", BACKGROUNDS))
    w.keywords("background")
    w.end()
    _check_colours(objects)
    return CaptionSpec(background, objects)


def spec_of(scene: Scene) -> CaptionSpec:
    """The caption spec of a scene (what its canonical caption says)."""
    objects = tuple(ObjectSpec(o.shape, o.colour, o.size, o.motion) for o in scene.objects)
    return CaptionSpec(scene.background, objects)


def scene_from_caption(spec: CaptionSpec | str, rng: np.random.Generator) -> Scene:
    """A scene following the caption, objects at random valid positions (clear of each other)."""
    if isinstance(spec, str):
        spec = parse_caption(spec)
    objects: tuple[ShapeObject, ...] = ()
    for o in spec.objects:
        objects += (place(rng, o.shape, o.colour, o.size, o.motion, objects),)
    return Scene(spec.background, objects)


def random_caption(rng: np.random.Generator) -> str:
    """The canonical caption of a random scene."""
    return caption(random_scene(rng))


# ---- task prefixes and instructions --------------------------------------------------------------


def strip_prefix(text: str) -> tuple[str, str]:
    """'(extend) a ...' -> ('extend', 'a ...'); '(v2v) remove ...' -> ('v2v', 'remove ...');
    text without a prefix -> ('', text)."""
    for task in TASKS[1:]:
        if text.startswith(f"({task}) "):
            return task, text[len(task) + 3 :]
    return "", text


def _add(w: _Words) -> Instruction:
    shape, colour, size = _object(w)
    motion = "stays still"
    if w.peek() is not None:
        w.take({"that"}, "'that' or the end")
        motion = _motion(w)
    w.end()
    return Instruction("add", shape, colour, size=size, motion=motion)


def _remove_or_recolour(w: _Words, verb: str) -> Instruction:
    w.keywords("the")
    colour = w.take(COLOURS, _one_of("a colour", COLOURS))
    shape = w.take(SHAPES, _one_of("a shape", SHAPES))
    if verb == "remove":
        w.end()
        return Instruction("remove", shape, colour)
    new = w.take(COLOURS, _one_of("the new colour", COLOURS))
    w.end()
    return Instruction("recolour", shape, colour, new_colour=new)


def parse_instruction(text: str) -> Instruction:
    """An edit instruction (no '(v2v) ' prefix) -> Instruction."""
    w = _Words(text, "an instruction")
    verb = w.take(VERBS, _one_of("an edit", VERBS))
    if verb == "add":
        return _add(w)
    if verb == "change":
        w.keywords("the", "background", "to")
        background = w.take(BACKGROUNDS, _one_of("a background", BACKGROUNDS))
        w.end()
        return Instruction("background", background=background)
    return _remove_or_recolour(w, verb)


def edit_spec(spec: CaptionSpec, ins: Instruction | str) -> CaptionSpec:
    """The caption spec after an edit (what the edited clip's caption says).

    Raises EditError when the instruction cannot apply (names an absent object, ...)."""
    if isinstance(ins, str):
        ins = parse_instruction(strip_prefix(ins)[1])
    if ins.kind == "background":
        check_background(spec.background, ins)
        return dataclasses.replace(spec, background=ins.background)
    if ins.kind == "add":
        check_add(spec.objects, ins)
        new = ObjectSpec(ins.shape, ins.colour, ins.size, ins.motion)
        return dataclasses.replace(spec, objects=spec.objects + (new,))
    return dataclasses.replace(spec, objects=edit_objects(spec.objects, ins))


def apply_edit(scene: Scene, instruction: str, rng: np.random.Generator | None = None) -> Scene:
    """Parse an instruction (an optional '(v2v) ' prefix is allowed) and apply it to the scene.

    Raises CaptionError for text outside the grammar, EditError when it cannot apply.
    """
    task, text = strip_prefix(instruction)
    if task == "extend":
        raise EditError("an (extend) caption is not an edit instruction")
    return apply_instruction(scene, parse_instruction(text), rng)


def random_edit(scene: Scene, rng: np.random.Generator) -> tuple[str, Scene]:
    """A spec instruction (add / remove / recolour / background) and the edited scene.

    Remove only with two objects, add only with one; recolours pick a colour not in use.
    """
    kinds = ["recolour", "background"] + (["remove"] if len(scene.objects) == 2 else ["add"])
    kind = str(rng.choice(kinds))
    if kind == "background":
        text = f"change the background to {rng.choice([b for b in BACKGROUNDS if b != scene.background])}"
    elif kind == "add":
        obj = random_object(rng, scene.objects)
        bare = obj.motion == "stays still" and rng.random() < 0.5  # "add X" means it stays still
        text = f"add {obj.describe()}" + ("" if bare else f" that {obj.motion}")
        return text, dataclasses.replace(scene, objects=scene.objects + (obj,))
    else:
        target = scene.objects[int(rng.integers(len(scene.objects)))]
        text = f"remove the {target.colour} {target.shape}"
        if kind == "recolour":
            used = {o.colour for o in scene.objects}
            new = rng.choice([c for c in COLOURS if c not in used])
            text = f"make the {target.colour} {target.shape} {new}"
    return text, apply_edit(scene, text)
