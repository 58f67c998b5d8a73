"""Training data for the demo model, rendered on the fly and deterministic from a seed.

One batch holds one task, so its sequences have equal lengths:

- t2v: caption, the scene's first TRAIN_FRAMES (17) frames.
- extend: "(extend) " + caption, TRAIN_FRAMES frames starting at a random later time. The model
  is causal, so the first frames of such a clip are the "source" and the rest its continuation;
  inference feeds up to TRAIN_FRAMES - 1 source frames as context and samples what follows.
- v2v: "(v2v) " + instruction, EDIT_FRAMES source frames followed by the same EDIT_FRAMES of the
  edited scene (same start time) in one causal sequence. Inference must edit in segments of
  EDIT_FRAMES: encode EDIT_FRAMES source frames as context, sample EDIT_FRAMES frames after
  them, and start the next segment from the next EDIT_FRAMES source frames (fresh context).
- i2v needs no data of its own: frame 0 of every clip is noise-augmented context like any other.

Frames are (T, 48, 64, 3) uint8 RGB, as engine.demo.world renders them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.demo.captions import random_edit, strip_prefix
from engine.demo.world import (
    TRAIN_FRAMES,
    Scene,
    caption,
    random_scene,
    render,
)

EDIT_FRAMES = 8  # source frames, then as many edited frames, per v2v training sequence
EXTEND_MAX_START = 64  # extend clips start at 1 .. EXTEND_MAX_START - 1 frames into the scene
EDIT_MAX_START = 48
TASKS = ("t2v", "extend", "v2v")
MIX = (0.5, 0.2, 0.3)


@dataclass(frozen=True)
class Batch:
    task: str
    texts: list[str]  # with task prefix, before caption dropping
    frames: np.ndarray  # (B, T, 48, 64, 3) uint8 RGB


def training_scene(rng: np.random.Generator, two_objects: float | None = None) -> Scene:
    """A random scene; two_objects: the chance it holds two objects (None: the world's own draw,
    one or two alike). Raising it spends more of the training on the scenes the model finds
    hardest (two objects to keep apart, each with its shape)."""
    if two_objects is None:
        return random_scene(rng)
    return random_scene(rng, 2 if rng.random() < two_objects else 1)


def example(
    task: str, rng: np.random.Generator, two_objects: float | None = None
) -> tuple[str, np.ndarray]:
    """(text, frames (T, 48, 64, 3) uint8) of one training sequence of `task`."""
    scene = training_scene(rng, two_objects)
    if task == "t2v":
        return caption(scene), render(scene, TRAIN_FRAMES)
    if task == "extend":
        start = int(rng.integers(1, EXTEND_MAX_START))
        return "(extend) " + caption(scene), render(scene, TRAIN_FRAMES, start)
    if task == "v2v":
        instruction, edited = random_edit(scene, rng)
        start = int(rng.integers(0, EDIT_MAX_START))
        clip = np.concatenate(
            [render(scene, EDIT_FRAMES, start), render(edited, EDIT_FRAMES, start)]
        )
        return "(v2v) " + instruction, clip
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def make_batch(
    rng: np.random.Generator,
    size: int,
    task: str | None = None,
    two_objects: float | None = None,
) -> Batch:
    """A batch of one task (drawn from MIX unless given)."""
    task = task or str(rng.choice(TASKS, p=MIX))
    texts, clips = zip(*(example(task, rng, two_objects) for _ in range(size)), strict=True)
    return Batch(task, list(texts), np.stack(clips))


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The data generator of one training step: a resumed run sees the same data."""
    return np.random.default_rng([seed, step])


def step_data(
    step: int,
    seed: int,
    size: int,
    drop_text: float,
    two_objects: float | None = None,
    drop_to_task: float = 0.0,
) -> tuple[np.ndarray, list[str]]:
    """The flow's training data of one step: clips (B, T, 48, 64, 3) uint8 and their texts, each
    dropped with probability `drop_text` (for guidance): to "", or, for a text with a task prefix
    and with probability `drop_to_task`, to the prefix alone ("(v2v) "), the unconditional text
    of guided edits. A function of its arguments alone, so worker processes can render steps
    ahead of the trainer."""
    rng = batch_rng(seed, step)
    batch = make_batch(rng, size, two_objects=two_objects)
    return batch.frames, [
        _dropped(t, rng, drop_to_task) if rng.random() < drop_text else t for t in batch.texts
    ]


def _dropped(text: str, rng: np.random.Generator, to_task: float) -> str:
    task, _ = strip_prefix(text)
    if task and to_task > 0 and rng.random() < to_task:
        return f"({task}) "
    return ""


def random_frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 48, 64, 3) uint8 single frames of random scenes at random times (codec training);
    a third of them from edited scenes, whose objects can overlap."""
    frames = []
    for _ in range(n):
        scene = random_scene(rng)
        if rng.random() < 1 / 3:
            scene = random_edit(scene, rng)[1]
        frames.append(render(scene, 1, int(rng.integers(0, EXTEND_MAX_START + TRAIN_FRAMES)))[0])
    return np.stack(frames)


def to_unit(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1]."""
    x = np.moveaxis(frames, -1, -3).astype(np.float32)
    return x / 127.5 - 1.0
