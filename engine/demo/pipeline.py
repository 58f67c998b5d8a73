"""The Shapes-world demo model as a Pipeline: its edit settings and the evaluation's chain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.api import TASK_PREFIX
from engine.denoise import denoise_clip
from engine.pipeline import Pipeline, PipelineSettings, to_uint8
from engine.session import denoise_chunk

V2V_NULLS = ("empty", "task")  # guided edits' unconditional text: "" or "(v2v) "


@dataclass(frozen=True)
class DemoSettings(PipelineSettings):
    """PipelineSettings with the demo bundle's two edit settings.

    `v2v_null`: guided edits' unconditional text, "empty" ("") or "task" ("(v2v) ", for a model
    trained with `--drop-to-task`): given the source frames, the empty text predicts their
    continuation, not an edit of them. `v2v_carry`: edited frames a segment after the first takes
    as context after its source frames, so that what an edit makes goes on from one segment to the
    next instead of being drawn anew in each (0: none)."""

    v2v_null: str = "empty"
    v2v_carry: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.v2v_null not in V2V_NULLS:
            raise ValueError(f"v2v_null must be one of {V2V_NULLS}, got {self.v2v_null!r}")
        if not 0 <= self.v2v_carry < max(self.v2v_segment, 1):
            raise ValueError(
                f"v2v_carry must be from 0 to v2v_segment - 1 ({self.v2v_segment - 1}), "
                f"got {self.v2v_carry}"
            )


class DemoPipeline(Pipeline):
    settings: DemoSettings

    def null_text(self, mode: str) -> str:
        return TASK_PREFIX["v2v"] if mode == "v2v" and self.settings.v2v_null == "task" else ""

    def edit_carry(self) -> int:
        return self.settings.v2v_carry


@torch.no_grad()
def through_chain(
    pipeline: Pipeline, frames: np.ndarray, text: str, noise_seed: int = 0
) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 as generation would show them if the flow sampled exactly their
    latents: encoded, the training noise added (as for context), cleaned by the learnable
    denoiser under `text`, decoded. What is lost here is lost to every sample: the ceiling the
    codec and denoiser leave the flow (the evaluation's `chain` task)."""
    model = pipeline.model
    latents = pipeline.encode(pipeline.prepare_video(frames), noise_seed)
    latents = latents.to(model.top.proj_in.weight.dtype)
    if hasattr(model, "learnable_self_denoiser"):
        y, _ = pipeline.embed(text, 0.0)
        steps = denoise_chunk(model, pipeline.options(0.0, latents.size(1)))
        latents = denoise_clip(model, latents, y, steps, model.cfg.denoiser_window)
    return to_uint8(pipeline.codec.decode(latents))
