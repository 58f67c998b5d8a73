"""The request being prepared in the inspector: mode, prompt, seed, guidance, temperature, frames,
sources, and how the seed moves from job to job.

Views write fields with `set(...)` (the prompt box with `type_prompt`); `request()` is the record
the generation controller queues. Selecting a clip copies that clip's record into the draft, but
a prompt the user typed and has not queued yet stays: the clip's prompt is offered instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from engine.api import MODES

from .events import Event
from .request import ClipRequest

FIELDS = (
    "mode",
    "prompt",
    "seed",
    "guidance",
    "temperature",
    "frames",
    "image",
    "clip",
    "seed_mode",
    "takes",
    "demo_grammar",
)
# fixed: every job takes the Seed field; next: the field steps by one after each job that used
# it; random: a new random seed after each job that used it
SEED_MODES = ("fixed", "next", "random")
CROPS = ("centre", "start", "end", "fit")  # start: top / left, end: bottom / right, fit: bars
MAX_TAKES = 16


@dataclass(frozen=True, eq=False)
class ImageSource:
    """A start image for image to video, already fitted to the project's frame size.

    `original` (when kept) is the image as read, reduced in size, so that the crop can change."""

    name: str
    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8 RGB
    original: np.ndarray | None = field(default=None, repr=False)  # (h, w, 3) uint8 RGB
    crop: str = "centre"
    size: tuple[int, int] | None = None  # the file's (width, height)

    def recropped(self, crop: str) -> ImageSource:
        """The same image fitted to the same frame size with another crop."""
        if crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r}")
        if self.original is None or crop == self.crop:
            return self
        h, w = self.image.shape[:2]
        return replace(self, image=fit_image(self.original, w, h, crop), crop=crop)


def fit_image(image: np.ndarray, width: int, height: int, crop: str = "centre") -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (height, width, 3). crop: "centre" as the pipeline does; "start" /
    "end" keep the top / left or bottom / right of what does not fit; "fit" shows the whole image
    with black bars. Only the part kept is resized."""
    import cv2

    from engine.frames import fit_frame

    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; expected one of {CROPS}")
    if crop == "centre" or image.shape[:2] == (height, width):
        return fit_frame(image, width, height)
    h, w = image.shape[:2]
    if crop == "fit":
        scale = min(width / w, height / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        inner = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
        out = np.zeros((height, width, 3), np.uint8)
        top, left = (height - nh) // 2, (width - nw) // 2
        out[top : top + nh, left : left + nw] = inner
        return out
    scale = max(width / w, height / h)
    cw, ch = min(w, round(width / scale)), min(h, round(height / scale))  # kept, in source pixels
    at = 0.0 if crop == "start" else 1.0
    left, top = round((w - cw) * at), round((h - ch) * at)
    part = np.ascontiguousarray(image[top : top + ch, left : left + cw])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(part, (width, height), interpolation=interp)


class Draft:
    def __init__(
        self,
        seed: int = 0,
        guidance: float = 2.5,
        frames: int = 17,
        temperature: float | None = None,
    ) -> None:
        self.mode = "t2v"
        self.prompt = ""
        self.seed = seed
        self.guidance = guidance
        self.temperature = temperature  # None: the model's own default
        self.frames = frames
        self.image: ImageSource | None = None
        self.clip: str | None = None  # source clip for edit (v2v) / extend
        self.seed_mode = "fixed"
        self.takes = 1  # how many takes (seeds in a row) one Generate makes
        self.demo_grammar = False  # the loaded model reads the demo's closed grammar
        self.typed = False  # the prompt was typed and not queued yet
        self.events = SimpleNamespace(changed=Event("changed"))  # (field name)

    def set(self, **changes) -> None:
        """Write fields. A write of `clip` with a `prompt` (selecting a clip) keeps a prompt the
        user typed and has not queued, with its mode (the inspector offers the clip's). It never writes the seed: the Seed field changes only when the user sets it, or after a
        job used it as `seed_mode` says (the inspector offers the clip's seed)."""
        if "clip" in changes:
            changes.pop("seed", None)
        if "clip" in changes and "prompt" in changes and self.typed and self.prompt.strip():
            changes.pop("prompt")
            changes.pop("mode", None)
        if "prompt" in changes:
            self.typed = False
        self._apply(changes)

    def type_prompt(self, text: str) -> None:
        """The prompt as the user types it: kept when a clip is selected until it is queued."""
        self.typed = bool(text.strip())
        self._apply({"prompt": text})

    def sent(self, record: ClipRequest) -> None:
        """A job was queued with `record`: the typed prompt is no longer unsent, and a seed taken
        from the Seed field moves on as `seed_mode` says."""
        if record.prompt == self.prompt.strip():
            self.typed = False
        if record.seed == self.seed and self.seed_mode != "fixed":
            step = self.seed + 1 if self.seed_mode == "next" else random.randrange(2**31)
            self._apply({"seed": step % 2**31})

    def _apply(self, changes: dict) -> None:
        for name, value in changes.items():
            if name not in FIELDS:
                raise AttributeError(name)
            if name == "mode" and value not in MODES:
                raise ValueError(f"unknown mode {value!r}")
            if name == "seed_mode" and value not in SEED_MODES:
                raise ValueError(f"unknown seed mode {value!r}")
            if name == "takes" and not 1 <= int(value) <= MAX_TAKES:
                raise ValueError(f"takes must be from 1 to {MAX_TAKES}, got {value}")
            if getattr(self, name) is value or (
                name not in ("image",) and getattr(self, name) == value
            ):
                continue
            setattr(self, name, value)
            self.events.changed.emit(name)

    def request(self) -> ClipRequest:
        """The record of the request being prepared. Its source (the image or clip) is resolved
        against the timeline when it is queued; the demo's grammar is checked then."""
        return ClipRequest(
            mode=self.mode,
            prompt=self.prompt.strip(),
            seed=int(self.seed),
            guidance=float(self.guidance),
            frames=int(self.frames),
            temperature=self.temperature,
            demo_grammar=self.demo_grammar,
        )
