"""The request being prepared in the inspector: mode, prompt, seed, guidance, temperature, frames,
sources.

Views write fields with `set(...)`; `request()` is the record the generation controller queues.
Selecting a clip copies that clip's record into the draft.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from engine.api import MODES

from .events import Event
from .request import ClipRequest

FIELDS = ("mode", "prompt", "seed", "guidance", "temperature", "frames", "image", "clip")


@dataclass(frozen=True, eq=False)
class ImageSource:
    """A start image for image to video, already fitted to the project's frame size."""

    name: str
    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8 RGB


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
        self.events = SimpleNamespace(changed=Event("changed"))  # (field name)

    def set(self, **changes) -> None:
        for name, value in changes.items():
            if name not in FIELDS:
                raise AttributeError(name)
            if name == "mode" and value not in MODES:
                raise ValueError(f"unknown mode {value!r}")
            if getattr(self, name) is value or (
                name not in ("image",) and getattr(self, name) == value
            ):
                continue
            setattr(self, name, value)
            self.events.changed.emit(name)

    def request(self) -> ClipRequest:
        """The record of the request being prepared. Its source (the image or clip) is resolved
        against the timeline when it is queued."""
        return ClipRequest(
            mode=self.mode,
            prompt=self.prompt.strip(),
            seed=int(self.seed),
            guidance=float(self.guidance),
            frames=int(self.frames),
            temperature=self.temperature,
        )
