"""Frames for the editor: fitted to the project's frame size, and turned into QImages. Safe off
the GUI thread (QImage is not a QPixmap)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, height, width, 3): resize to cover and centre crop (as the pipeline does)."""
    from engine.frames import fit_frame

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([fit_frame(f, width, height) for f in frames])


def to_qimage(frame: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB -> a QImage that owns a copy of the pixels."""
    frame = np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    return QImage(frame.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
