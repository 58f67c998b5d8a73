"""Frames for the editor: fitted to the project's frame size, and turned into QImages. Safe off
the GUI thread (QImage is not a QPixmap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage

from .state.draft import ImageSource, fit_image

KEEP_SCALE = 3  # a start image is kept at up to this many times the frame size, for re-cropping


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, height, width, 3): resize to cover and centre crop (as the pipeline does)."""
    from engine.frames import fit_frame

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([fit_frame(f, width, height) for f in frames])


def crop_note(source: ImageSource, width: int, height: int) -> str:
    """What fitting did to a start image: "" when its shape is the frame's, else e.g.
    "1920×1080 cropped to 4:3 (centre)"."""
    if source.size is None:
        return ""
    w, h = source.size
    if w * height == h * width:
        return ""
    side = {"centre": "centre", "start": "top/left", "end": "bottom/right"}
    ratio = _ratio(width, height)
    if source.crop == "fit":
        return f"{w}×{h} shown whole in {ratio} (bars)"
    return f"{w}×{h} cropped to {ratio} ({side[source.crop]})"


def _ratio(width: int, height: int) -> str:
    from math import gcd

    g = gcd(width, height)
    return f"{width // g}:{height // g}"


def load_start_image(
    path: str | Path, width: int, height: int, crop: str = "centre"
) -> ImageSource:
    """Read an image file (off the GUI thread) as a start image fitted to width x height, keeping
    a reduced copy of it so that the crop can be changed. Raises EngineError as read_image."""
    import cv2

    from engine.media import read_image

    path = Path(path)
    image = read_image(path)
    h, w = image.shape[:2]
    keep = image
    shrink = max(KEEP_SCALE * width / w, KEEP_SCALE * height / h)
    if shrink < 1:
        size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
        keep = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    fitted = fit_image(image, width, height, crop)
    return ImageSource(path.name, fitted, original=keep, crop=crop, size=(w, h))


def to_qimage(frame: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB -> a QImage that owns a copy of the pixels."""
    frame = np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    return QImage(frame.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
