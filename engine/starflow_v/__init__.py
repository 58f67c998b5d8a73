"""The released STARFlow-V 7B model's companions: text encoder, video VAE, frame sizes, checkpoint.

    from engine.starflow_v.hub import ModelManager            # find / download / convert / verify
    from engine.starflow_v.text import T5TextEncoder, PromptTemplate   # flan-t5-xl, reference template
    from engine.starflow_v.vae import WanCodec                 # Wan2.2 VAE as the engine's Codec
    from engine.starflow_v.sizes import frame_size, latent_frames

`text` and `vae` need the `large` extra (transformers, diffusers, sentencepiece); they import it
only when a model is built, so importing this package stays cheap and Qt-free.
"""

from __future__ import annotations

from .sizes import (
    ASPECT_RATIOS,
    FPS,
    TRAIN_FRAMES,
    VideoGeometry,
    frame_size,
    latent_frames,
    video_frames,
)

__all__ = [
    "ASPECT_RATIOS",
    "FPS",
    "TRAIN_FRAMES",
    "VideoGeometry",
    "frame_size",
    "latent_frames",
    "video_frames",
]
