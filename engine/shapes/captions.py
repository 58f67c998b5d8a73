"""The caption and edit-instruction grammar of shared/shapes_world.md: strict parsing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES, Scene, place


class CaptionError(ValueError):
    """A caption or instruction outside the grammar; the message says what was expected where."""


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    colour: str
    size: str
    motion: str


@dataclass(frozen=True)
class CaptionSpec:
    background: str
    objects: tuple[ObjectSpec, ...]


@dataclass(frozen=True)
class Instruction:
    kind: str  # add | remove | recolour | background
    shape: str | None = None
    colour: str | None = None
    new_colour: str | None = None
    size: str | None = None
    motion: str | None = None
    background: str | None = None


class _Words:
    def __init__(self, text: str) -> None:
        if text != text.strip() or "  " in text or text != text.lower():
            raise CaptionError("use lower case words separated by single spaces")
        self.words, self.i = text.split(" "), 0

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def take(self, options, what: str) -> str:
        word = self.peek()
        if word not in options:
            got = "the end" if word is None else repr(word)
            raise CaptionError(f"expected {what} at word {self.i + 1}, got {got}")
        self.i += 1
        return word

    def motion(self) -> str:
        first = self.take({m.split()[0] for m in MOTIONS}, "a motion (moves/stays/bounces)")
        second = self.take({m.split()[1] for m in MOTIONS if m.startswith(first)}, f"the rest of '{first} ...'")
        return f"{first} {second}"

    def end(self) -> None:
        if self.peek() is not None:
            raise CaptionError(f"unexpected {self.peek()!r} at word {self.i + 1}: expected the end")


def _object(w: _Words) -> tuple[str, str, str]:
    w.take({"a"}, "'a'")
    size = "large"
    if w.peek() in SIZES:
        size = w.take(SIZES, "a size")
    colour = w.take(COLOURS, f"a colour ({', '.join(COLOURS)})")
    shape = w.take(SHAPES, f"a shape ({', '.join(SHAPES)})")
    return shape, colour, size


def parse_caption(text: str) -> CaptionSpec:
    w = _Words(text)
    objects = []
    while True:
        shape, colour, size = _object(w)
        objects.append(ObjectSpec(shape, colour, size, w.motion()))
        if w.peek() != "and" or len(objects) == 2:
            break
        w.take({"and"}, "'and'")
    w.take({"on"}, "'on' (or 'and' before a second object)")
    w.take({"a"}, "'a'")
    background = w.take(BACKGROUNDS, f"a background ({', '.join(BACKGROUNDS)})")
    w.take({"background"}, "'background'")
    w.end()
    if len({o.colour for o in objects}) != len(objects):
        raise CaptionError("two objects may not have the same colour")
    return CaptionSpec(background, tuple(objects))


def parse_instruction(text: str) -> Instruction:
    w = _Words(text)
    verb = w.take({"add", "remove", "make", "change"}, "add / remove / make / change")
    if verb == "add":
        shape, colour, size = _object(w)
        motion = "stays still"
        if w.peek() == "that":
            w.take({"that"}, "'that'")
            motion = w.motion()
        w.end()
        return Instruction("add", shape, colour, size=size, motion=motion)
    if verb == "change":
        for word in ("the", "background", "to"):
            w.take({word}, repr(word))
        bg = w.take(BACKGROUNDS, "a background")
        w.end()
        return Instruction("background", background=bg)
    w.take({"the"}, "'the'")
    colour = w.take(COLOURS, "a colour")
    shape = w.take(SHAPES, "a shape")
    if verb == "remove":
        w.end()
        return Instruction("remove", shape, colour)
    new = w.take(COLOURS, "the new colour")
    w.end()
    return Instruction("recolour", shape, colour, new_colour=new)


def strip_prefix(text: str) -> tuple[str, str]:
    for task in ("extend", "v2v"):
        if text.startswith(f"({task}) "):
            return task, text[len(task) + 3:]
    return "", text


def scene_from_caption(spec: CaptionSpec, rng: np.random.Generator) -> Scene:
    objects: tuple = ()
    for o in spec.objects:
        objects += (place(rng, o.shape, o.colour, o.size, o.motion, objects),)
    return Scene(spec.background, objects)


def random_caption(rng: np.random.Generator) -> str:
    from .world import caption, random_scene

    return caption(random_scene(rng))
