"""Frame sizes and clip lengths of the released STARFlow-V 7B model (480p, 16 fps, 81 frames).

The reference picks a frame size per aspect ratio by keeping the area of a 640x640 frame and
rounding each side to the nearest multiple of the VAE's spatial factor times the patch size
(dataset.py `aspect_ratio_to_image_size`). Rounding uses Python's `round` (half to even), as
the reference does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api import EngineError

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "16:9", "9:16", "4:5", "5:4", "21:9", "9:21")
BASE_SIDE = 640  # the 7B config's img_size: frames keep the area of a BASE_SIDE square
VAE_SPATIAL = 16  # Wan2.2 VAE: 16x spatial compression
VAE_TEMPORAL = 4  # Wan2.2 VAE: 4x temporal compression after the first frame
PATCH_SIZE = 1  # the 7B flow's patch size on latents
GUIDANCE = 3.5  # the reference's video script (scripts/test_sample_video.sh: --cfg 3.5)
FPS = 16  # the 7B model's training frame rate
TRAIN_FRAMES = 81  # the 7B model's training clip length (video frames)


def parse_aspect_ratio(aspect_ratio: str) -> float:
    """'16:9' -> 16 / 9; raises EngineError on anything else."""
    try:
        width, height = (int(part) for part in aspect_ratio.split(":"))
    except (ValueError, AttributeError):
        raise EngineError(f"aspect ratio must look like '16:9', got {aspect_ratio!r}") from None
    if width <= 0 or height <= 0:
        raise EngineError(f"aspect ratio sides must be positive, got {aspect_ratio!r}")
    return width / height


def nearest_multiple(x: float, base: int) -> int:
    """x rounded to the nearest multiple of `base` (ties to even, like the reference)."""
    return int(round(x / base)) * base


def frame_size(
    aspect_ratio: str | None,
    side: int = BASE_SIDE,
    multiple: int = VAE_SPATIAL * PATCH_SIZE,
) -> tuple[int, int]:
    """(height, width) in pixels of a frame with the area of a side x side square.

    aspect_ratio is 'W:H' (e.g. '16:9' -> (480, 848)); None gives the square (side, side).
    """
    if aspect_ratio is None:
        return side, side
    ratio = parse_aspect_ratio(aspect_ratio)
    area = side * side
    height = nearest_multiple(math.sqrt(area / ratio), multiple)
    width = nearest_multiple(math.sqrt(area * ratio), multiple)
    return height, width


def latent_frames(frames: int, temporal_factor: int = VAE_TEMPORAL) -> int:
    """Video frames -> latent frames of a causal video VAE: (F - 1) // 4 + 1."""
    if frames < 1:
        raise EngineError(f"a clip needs at least one frame, got {frames}")
    return (frames - 1) // temporal_factor + 1


def video_frames(latents: int, temporal_factor: int = VAE_TEMPORAL) -> int:
    """Latent frames -> the video frames they decode to: 1 for the first, 4 for each after."""
    if latents < 1:
        raise EngineError(f"a clip needs at least one latent frame, got {latents}")
    return (latents - 1) * temporal_factor + 1


@dataclass(frozen=True)
class VideoGeometry:
    """Pixel and latent sizes of one clip of the released model."""

    aspect_ratio: str
    height: int
    width: int
    frames: int
    fps: int

    @classmethod
    def for_clip(
        cls, aspect_ratio: str = "16:9", frames: int = TRAIN_FRAMES, fps: int = FPS
    ) -> VideoGeometry:
        height, width = frame_size(aspect_ratio)
        return cls(aspect_ratio, height, width, frames, fps)

    @property
    def latent_frames(self) -> int:
        return latent_frames(self.frames)

    @property
    def latent_size(self) -> tuple[int, int]:
        """(h, w) of one latent frame."""
        return self.height // VAE_SPATIAL, self.width // VAE_SPATIAL

    @property
    def seconds(self) -> float:
        return self.frames / self.fps
