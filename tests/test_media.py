"""engine.media's video writer and reader: every frame written lands once, in order, and decodes
back near what was written."""

from __future__ import annotations

import numpy as np
import pytest

from engine.demo.scoring import psnr
from engine.media import VideoWriter, read_video


def moving_square(frames: int, width: int, height: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a grey gradient with a white square moving 3 pixels right per frame,
    so that every frame differs from its neighbours."""
    x = np.linspace(40, 120, width, dtype=np.float32)
    y = np.linspace(0, 60, height, dtype=np.float32)[:, None]
    clip = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        frame = np.repeat((x + y)[..., None], 3, axis=2)
        frame[10:22, 3 * t : 3 * t + 12] = 255
        clip[t] = frame.round().astype(np.uint8)
    return clip


@pytest.mark.parametrize("size", [(64, 48), (63, 47)])
def test_written_frames_decode_one_for_one_in_order(tmp_path, size):
    width, height = size
    clip = moving_square(12, width, height)
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, 16, width, height, {"prompt": "a square"}) as writer:
        writer.write(clip[0])  # one (H, W, 3) frame, then batches of several
        writer.write(clip[1:5])
        writer.write(clip[5:])
    assert writer.frames == 12 and not list(tmp_path.glob(".*part"))
    decoded, fps = read_video(out)
    assert fps == 16 and decoded.shape == (12, height + height % 2, width + width % 2, 3)
    decoded = decoded[:, :height, :width]  # odd sizes are padded to even
    for t in range(12):
        scores = [psnr(decoded[t], frame) for frame in clip]
        assert scores[t] > 35 and int(np.argmax(scores)) == t, (t, scores)
    assert read_video(out, max_frames=5)[0].shape[0] == 5
