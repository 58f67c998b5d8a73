"""The request record: what a clip is made with, from the Draft to the engine and into the project.

    record = draft.request()                       # mode, prompt, seed, guidance, frames, ...
    engine_request = record.engine_request(image, video)   # the engine's checks, once
    Clip(..., request=record)                      # kept with the clip; saved in project.json

The record holds no pixels: a start image or source clip is named by a `SourceRef` into the
project's media, so a clip can be regenerated from its record alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.api import MODES, TASK_PREFIX, EngineError, GenerateRequest, valid_temperature

from .prompt_grammar import prompt_problem


@dataclass(frozen=True)
class SourceRef:
    """Frames [start, stop) of a medium: an i2v start image or a v2v / extend source clip."""

    media: str
    start: int
    stop: int

    def to_dict(self) -> dict[str, Any]:
        return {"media": self.media, "start": self.start, "stop": self.stop}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceRef:
        return cls(str(d["media"]), int(d["start"]), int(d["stop"]))


@dataclass(frozen=True)
class ClipRequest:
    """The GenerateRequest fields a clip is made with (without the pixel arrays)."""

    mode: str = "t2v"
    prompt: str = ""
    seed: int = 0
    guidance: float = 2.5
    frames: int = 17
    source: SourceRef | None = None
    model: str = ""
    temperature: float | None = None  # None: the model's own default
    # the loaded model reads the demo's closed grammar: refuse other text before queuing
    demo_grammar: bool = field(default=False, compare=False, repr=False)

    @property
    def text(self) -> str:
        """The prompt as the model sees it (task prefix included)."""
        return TASK_PREFIX[self.mode] + self.prompt.strip()

    def engine_request(
        self, image: np.ndarray | None = None, video: np.ndarray | None = None
    ) -> GenerateRequest:
        """The engine's request for this record: image (H, W, 3) and video (T, H, W, 3) uint8 RGB
        are the source's pixels. Raises EngineError for what the engine refuses, and for a prompt
        outside the demo's grammar when `demo_grammar` is set."""
        problem = prompt_problem(self.mode, self.prompt, self.demo_grammar)
        if problem is not None and self.prompt.strip():
            raise EngineError(problem)
        return GenerateRequest(
            prompt=self.prompt,
            mode=self.mode,
            frames=self.frames,
            seed=self.seed,
            guidance=self.guidance,
            temperature=self.temperature,
            image=image,
            video=video,
        )

    def to_dict(self) -> dict[str, Any]:
        keys = ("mode", "prompt", "seed", "guidance", "frames", "model", "temperature")
        d = {k: getattr(self, k) for k in keys}
        d["source"] = self.source.to_dict() if self.source else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipRequest:
        """A record read from a project file; ValueError names a field the engine would refuse."""
        mode, temperature = str(d["mode"]), d.get("temperature")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        if temperature is not None and not valid_temperature(float(temperature)):
            raise ValueError(f"temperature must be a positive number, got {temperature}")
        source = SourceRef.from_dict(d["source"]) if d.get("source") else None
        return cls(
            mode=mode,
            prompt=str(d["prompt"]),
            seed=int(d["seed"]),
            guidance=float(d["guidance"]),
            frames=int(d["frames"]),
            source=source,
            model=str(d.get("model", "")),
            temperature=None if temperature is None else float(temperature),
        )
