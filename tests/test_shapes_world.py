"""The Shapes world renderer and edits follow shared/shapes_world.md exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.demo.world import (
    BACKGROUNDS,
    COLOURS,
    HEIGHT,
    WIDTH,
    Scene,
    ShapeObject,
    caption,
    random_scene,
    render,
)


def one(
    shape="square", size="large", motion="stays still", x=20.0, y=20.0, bg="black", colour="red"
):
    return Scene(bg, (ShapeObject(shape, colour, size, motion, x, y),))


def object_pixels(frame: np.ndarray, colour: str) -> np.ndarray:
    return np.all(frame == COLOURS[colour], axis=-1)


def test_frames_are_exact_palette_colours():
    clip = render(random_scene(np.random.default_rng(1), 2), 17)
    assert clip.shape == (17, HEIGHT, WIDTH, 3) and clip.dtype == np.uint8
    palette = {tuple(c) for c in list(BACKGROUNDS.values()) + list(COLOURS.values())}
    assert {tuple(c) for c in clip.reshape(-1, 3)} <= palette


@pytest.mark.parametrize("size, side", [("small", 8), ("large", 14)])
def test_square_size_and_position(size, side):
    mask = object_pixels(render(one(size=size, x=20.0, y=20.0), 1)[0], "red")
    ys, xs = np.nonzero(mask)
    assert xs.max() - xs.min() + 1 == side and ys.max() - ys.min() + 1 == side
    assert abs(xs.mean() + 0.5 - 20) < 0.01 and abs(ys.mean() + 0.5 - 20) < 0.01


def test_triangle_is_upright_and_circle_is_round():
    tri = object_pixels(render(one("triangle"), 1)[0], "red")
    rows = tri.sum(axis=1)[tri.any(axis=1)]
    assert rows[0] < rows[-1] and np.all(np.diff(rows) >= 0)  # narrow apex at the top
    circle = object_pixels(render(one("circle"), 1)[0], "red").sum()
    assert abs(circle - np.pi * 7**2) < 12


@pytest.mark.parametrize(
    "motion, dx, dy",
    [
        ("moves left", -1.5, 0),
        ("moves right", 1.5, 0),
        ("moves up", 0, -1.5),
        ("moves down", 0, 1.5),
        ("stays still", 0, 0),
    ],
)
def test_motion_speed(motion, dx, dy):
    clip = render(one(motion=motion, x=32.0, y=24.0), 5)
    cx = [np.nonzero(object_pixels(f, "red"))[1].mean() for f in clip[[0, 4]]]
    cy = [np.nonzero(object_pixels(f, "red"))[0].mean() for f in clip[[0, 4]]]
    assert abs((cx[1] - cx[0]) / 4 - dx) < 0.2 and abs((cy[1] - cy[0]) / 4 - dy) < 0.2


def test_wrap_around_and_bounce():
    wrapped = render(one(motion="moves left", x=8.0), 8)[-1]
    cols = np.nonzero(object_pixels(wrapped, "red").any(axis=0))[0]
    assert cols.min() == 0 and cols.max() == WIDTH - 1  # split across the left/right edges
    clip = render(one(motion="bounces around", x=10.0, y=10.0), 80)
    for f in clip:
        ys, xs = np.nonzero(object_pixels(f, "red"))
        assert xs.max() - xs.min() <= 14 and ys.max() - ys.min() <= 14  # never split across edges


def test_random_scenes_are_valid():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = random_scene(rng)
        assert 1 <= len(scene.objects) <= 2
        assert len({o.colour for o in scene.objects}) == len(scene.objects)
        if len(scene.objects) == 2:
            a, b = (
                object_pixels(render(dataclasses.replace(scene, objects=(o,)), 1)[0], o.colour)
                for o in scene.objects
            )
            assert not (a & b).any()


def test_caption_grammar():
    scene = Scene(
        "navy",
        (
            ShapeObject("circle", "red", "small", "moves left", 10, 10),
            ShapeObject("square", "blue", "large", "stays still", 40, 30),
        ),
    )
    assert caption(scene) == (
        "a small red circle moves left and a large blue square stays still on a navy background"
    )


def test_edits_change_only_what_they_name():
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(100):
        scene = random_scene(rng)
        text, edited = random_edit(scene, rng)
        seen.add(text.split()[0])
        src, dst = render(scene, 8), render(edited, 8)
        if text.startswith("change the background"):
            assert edited.objects == scene.objects and edited.background != scene.background
        elif text.startswith("make"):
            changed = [(a, b) for a, b in zip(scene.objects, edited.objects, strict=True) if a != b]
            assert (
                len(changed) == 1
                and dataclasses.replace(changed[0][1], colour=changed[0][0].colour) == changed[0][0]
            )
        elif text.startswith("remove"):
            assert len(edited.objects) == 1 and edited.objects[0] in scene.objects
            keep = object_pixels(src, edited.objects[0].colour)
            assert not (
                keep & ~object_pixels(dst, edited.objects[0].colour)
            ).any()  # only uncovered
        else:
            assert (
                edited.objects[: len(scene.objects)] == scene.objects and len(edited.objects) == 2
            )
    assert seen == {"add", "remove", "make", "change"}


# ---- grammar -------------------------------------------------------------------------------------
from engine.demo.captions import (  # noqa: E402
    CaptionError,
    parse_caption,
    parse_instruction,
    random_caption,
    random_edit,
    scene_from_caption,
    strip_prefix,
)


def test_random_captions_parse_and_round_trip():
    rng = np.random.default_rng(5)
    for _ in range(200):
        text = random_caption(rng)
        assert caption(scene_from_caption(parse_caption(text), rng)) == text


def test_size_defaults_to_large():
    spec = parse_caption("a red circle moves left on a black background")
    assert spec.objects[0].size == "large"


@pytest.mark.parametrize(
    "bad, where",
    [
        ("a red circle moves left on a black", "'background'"),
        ("a purple circle moves left on a black background", "a colour"),
        ("a red circle moves sideways on a black background", "the rest of 'moves"),
        ("A red circle moves left on a black background", "lower case"),
        ("a red circle moves left  on a black background", "single spaces"),
        ("a red circle moves left on a black background please", "expected the end"),
        (
            "a red circle stays still and a red square stays still on a gray background",
            "same colour",
        ),
        (
            "a red circle moves left and a blue square stays still and a green circle stays still on a gray background",
            "'on'",
        ),
    ],
)
def test_captions_outside_the_grammar_are_rejected_with_the_reason(bad, where):
    with pytest.raises(CaptionError, match=where):
        parse_caption(bad)


def test_instructions_and_prefixes():
    assert parse_instruction("add a green triangle that moves up").motion == "moves up"
    assert parse_instruction("add a small green triangle").motion == "stays still"
    assert parse_instruction("remove the red circle").kind == "remove"
    assert parse_instruction("make the red circle blue").new_colour == "blue"
    assert parse_instruction("change the background to white").background == "white"
    with pytest.raises(CaptionError):
        parse_instruction("paint the red circle blue")
    assert strip_prefix("(v2v) remove the red circle") == ("v2v", "remove the red circle")
    assert strip_prefix("(extend) a red circle moves left on a black background")[0] == "extend"


def test_every_random_edit_instruction_parses():
    rng = np.random.default_rng(9)
    for _ in range(100):
        text, _ = random_edit(random_scene(rng), rng)
        parse_instruction(text)
