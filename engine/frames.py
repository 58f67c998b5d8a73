"""Frame helpers that need no torch: fit any image to a model's frame size."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .api import EngineError


def fit_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Any HWC uint8 RGB (or gray / RGBA) image -> (height, width, 3): resize to cover, centre crop."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
        raise EngineError(f"expected an 8-bit image, got dtype {img.dtype} shape {img.shape}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] != 3:
        raise EngineError(f"expected 3 colour channels, got {img.shape[2]}")
    h, w = img.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, math.ceil(w * scale - 1e-6)), max(height, math.ceil(h * scale - 1e-6))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(img[top : top + height, left : left + width])
