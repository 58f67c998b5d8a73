"""Training batches for the demo model: text to video, extend and video-to-video edit sequences.

Image to video needs no data of its own: the model is causal, so a given first frame is context.
Edits are learned as [source clip; edited clip] in one causal sequence (EDIT_FRAMES each), so the
pipeline edits long clips segment by segment.
"""

from __future__ import annotations

import numpy as np

from engine.shapes.world import TRAIN_FRAMES, caption, random_edit, random_scene, render

EDIT_FRAMES = 8
TASKS = ("t2v", "extend", "v2v")
MIX = (0.45, 0.2, 0.35)


def example(task: str, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(text, frames (T, 48, 64, 3) uint8) for one training sequence of `task`."""
    scene = random_scene(rng)
    if task == "t2v":
        return caption(scene), render(scene, TRAIN_FRAMES)
    if task == "extend":
        return "(extend) " + caption(scene), render(scene, TRAIN_FRAMES, start=int(rng.integers(1, 64)))
    instruction, edited = random_edit(scene, rng)
    start = int(rng.integers(0, 48))
    clip = np.concatenate([render(scene, EDIT_FRAMES, start), render(edited, EDIT_FRAMES, start)])
    return "(v2v) " + instruction, clip


def batch(rng: np.random.Generator, size: int) -> tuple[str, list[str], np.ndarray]:
    """A batch of one task (equal lengths): (task, texts, frames (B, T, 48, 64, 3))."""
    task = str(rng.choice(TASKS, p=MIX))
    texts, clips = zip(*(example(task, rng) for _ in range(size)), strict=True)
    return task, list(texts), np.stack(clips)
