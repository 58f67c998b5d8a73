"""Frame helpers that need no torch: fit any image to a model's frame size."""

from __future__ import annotations

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
    # crop the source to the frame's aspect first, then resize the crop: the same picture as
    # resizing to cover and cropping, without ever making an image larger than the frame (a
    # 1 x 1,000,000 strip covering a 64 x 48 frame would be 64 x 64,000,000 before its crop)
    scale = max(width / w, height / h)
    cw, ch = min(w, max(1, round(width / scale))), min(h, max(1, round(height / scale)))
    top, left = (h - ch) // 2, (w - cw) // 2
    img = img[top : top + ch, left : left + cw]
    if (cw, ch) != (width, height):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=interp)
    return np.ascontiguousarray(img)
