"""The scorer recognises ground truth and rejects wrong clips."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from engine.demo.captions import parse_caption, random_caption, scene_from_caption
from engine.demo.scoring import background_drift, detect, follows_caption, psnr, score_windows
from engine.demo.world import caption, random_scene, render


def test_ground_truth_follows_its_caption():
    """The ceiling: only clips whose two objects overlap for long (one hides the other) fail."""
    rng = np.random.default_rng(0)
    failures = []
    for _ in range(200):
        text = random_caption(rng)
        clip = render(scene_from_caption(parse_caption(text), rng), 17)
        if not follows_caption(clip, text):
            failures.append(text)
    assert len(failures) <= 6, failures
    assert all(" and " in f for f in failures)


def test_long_ground_truth_follows_in_every_window():
    rng = np.random.default_rng(1)
    for _ in range(5):
        scene = random_scene(rng)
        clip = render(scene, 480)
        assert all(score_windows(clip, caption(scene)))
        assert background_drift(clip) == 0.0


OPPOSITE = {
    "moves left": "moves right",
    "moves right": "moves left",
    "moves up": "moves down",
    "moves down": "moves up",
}


def test_wrong_clips_do_not_follow():
    rng = np.random.default_rng(2)
    checked: Counter[tuple[str, str]] = Counter()  # (the caption's motion, the clip's)
    for _ in range(40):
        scene = random_scene(rng, 1)
        obj = scene.objects[0]
        text = caption(scene)
        other_colour = "blue" if obj.colour != "blue" else "red"
        wrong = [
            dataclasses.replace(
                scene, background="white" if scene.background != "white" else "navy"
            ),
            dataclasses.replace(scene, objects=(dataclasses.replace(obj, colour=other_colour),)),
        ]
        # a moving object kept still, a still one moved, one moved the opposite way
        motions = ["stays still" if obj.motion != "stays still" else "moves right"]
        if obj.motion in OPPOSITE:
            motions.append(OPPOSITE[obj.motion])
        for motion in motions:
            wrong.append(
                dataclasses.replace(scene, objects=(dataclasses.replace(obj, motion=motion),))
            )
        for w in wrong:
            assert not follows_caption(render(w, 17), text), (text, caption(w))
            checked[obj.motion, w.objects[0].motion] += 1
    assert sum(checked.values()) > 100 and checked["stays still", "moves right"] > 3
    assert sum(checked[m, OPPOSITE[m]] for m in OPPOSITE) > 10


def test_detection_of_shapes_and_psnr():
    rng = np.random.default_rng(3)
    for _ in range(100):
        scene = random_scene(rng)
        found = {(o.colour, o.shape) for o in detect(render(scene, 1)[0]).objects}
        assert found == {(o.colour, o.shape) for o in scene.objects}
    a = render(random_scene(rng), 2)
    assert psnr(a, a) == 100.0
    assert abs(psnr(a, a + 10) - 10 * np.log10(255**2 / 100)) < 1e-9


def test_blobs_and_scattered_colour_are_not_shapes():
    """Generated frames can hold a colour that is no shape: a bar no template fits, or specks
    spread wider than the search square. The scorer says so (no shape) and never fails on it."""
    white, yellow, red = (235, 235, 235), (235, 220, 40), (230, 40, 40)
    frame = np.zeros((48, 64, 3), np.uint8) + np.array(white, np.uint8)
    for x, y in ((1, 1), (59, 1), (1, 43), (59, 43), (30, 22)):
        frame[y : y + 3, x : x + 3] = yellow  # five specks across the whole frame
    frame[10:13, 10:26] = red  # a 16 x 3 bar
    found = {f.colour: f for f in detect(frame).objects}
    assert set(found) == {"yellow", "red"}
    assert found["yellow"].shapes == () and found["red"].shapes == ()
    assert found["red"].fit < 0.6
    clip = np.repeat(frame[None], 17, axis=0)
    assert not follows_caption(clip, "a yellow square stays still on a white background")
    assert not follows_caption(clip, "a red square stays still on a white background")
