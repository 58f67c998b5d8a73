"""Export frames to a video file: MP4 (H.264), WebM (VP9) or GIF, scaled, a frame range, a
quality; written atomically (the file appears only when complete). No Qt.

    options = ExportOptions(format="gif", scale=4, start=2, stop=10)
    export_frames(frames, "clip.gif", fps=16, options=options)   # frames (T, H, W, 3) uint8 RGB

Scaling is nearest-neighbour for small frames (the demo's 64x48 pixels stay sharp) and smooth
(area / cubic) for large ones, unless `smooth` says otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .api import Cancelled, EngineError
from .media import atomic_write

log = logging.getLogger(__name__)

FORMATS = {"mp4": "MP4 (H.264)", "webm": "WebM (VP9)", "gif": "GIF"}
SMALL_WIDTH = 256  # frames narrower than this scale with nearest neighbour by default
MAX_SIDE = 8192


@dataclass(frozen=True)
class ExportOptions:
    """What to write: container/codec, scale factor, smoothing (None: by frame size), quality
    0..100 (higher: larger file, closer to the frames), frames [start, stop) (None: the end)."""

    format: str = "mp4"
    scale: float = 1.0
    smooth: bool | None = None
    quality: int = 80
    start: int = 0
    stop: int | None = None

    def checked(self, length: int, width: int, height: int) -> ExportOptions:
        """These options for `length` frames of width x height; EngineError names a bad field."""
        if self.format not in FORMATS:
            raise EngineError(f"unknown export format {self.format!r} (use mp4, webm or gif)")
        if not 0 <= self.quality <= 100:
            raise EngineError(f"quality must be 0..100, got {self.quality}")
        stop = length if self.stop is None else self.stop
        if not 0 <= self.start < stop <= length:
            raise EngineError(f"frame range {self.start}..{stop} is outside 0..{length}")
        if not 0 < self.scale or max(width, height) * self.scale > MAX_SIDE:
            raise EngineError(f"scale {self.scale} makes frames over {MAX_SIDE} px or none")
        return replace(self, stop=stop)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The written frame size (even for MP4 and WebM, which store 4:2:0 colour)."""
        w, h = max(1, round(width * self.scale)), max(1, round(height * self.scale))
        if self.format != "gif":
            w, h = w + w % 2, h + h % 2
        return w, h


def scale_frames(frames: np.ndarray, width: int, height: int, smooth: bool) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, height, width, 3): nearest neighbour, or area (shrinking) /
    cubic (enlarging) when `smooth`."""
    import cv2

    t, h, w = frames.shape[:3]
    if (w, h) == (width, height):
        return frames
    if not smooth:
        rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(np.intp)
        cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(np.intp)
        return frames[:, rows][:, :, cols]
    method = cv2.INTER_AREA if width < w else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (width, height), interpolation=method) for f in frames])


def export_frames(
    frames: np.ndarray,
    path: str | Path,
    fps: float,
    options: ExportOptions | None = None,
    metadata: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> int:
    """Write frames (T, H, W, 3) uint8 RGB to `path` as `options` say; returns the number of
    frames written. `progress(done, total)` is called as frames are encoded; a set `cancel`
    raises Cancelled and leaves no file."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise EngineError(f"expected frames (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    t, h, w = frames.shape[:3]
    o = (options or ExportOptions()).checked(t, w, h)
    path = Path(path)
    if not path.parent.is_dir():
        raise EngineError(f"folder not found: {path.parent}")
    frames = frames[o.start : o.stop]
    size = o.size(w, h)
    smooth = o.smooth if o.smooth is not None else w >= SMALL_WIDTH
    palette = gif_palette(frames) if o.format == "gif" else None

    def write(f) -> None:
        _encode(f, frames, size, smooth, fps, o, metadata or {}, palette, progress, cancel)

    atomic_write(path, write)
    return len(frames)


def _encode(f, frames, size, smooth, fps, o, metadata, palette, progress, cancel) -> None:
    import av

    fmt = {"mp4": "mp4", "webm": "webm", "gif": "gif"}[o.format]
    options = {"movflags": "use_metadata_tags"} if fmt == "mp4" else {}
    with av.open(f, mode="w", format=fmt, options=options) as container:
        for key, value in metadata.items():
            container.metadata[str(key)] = str(value)
        stream = _stream(container, o, fps, size)
        for i in range(0, len(frames), 8):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            for frame in scale_frames(frames[i : i + 8], *size, smooth):
                if palette is not None:
                    vf = av.VideoFrame.from_ndarray(palette.index(frame), format="pal8")
                else:
                    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(vf):
                    container.mux(packet)
            if progress is not None:
                progress(min(i + 8, len(frames)), len(frames))
        for packet in stream.encode():
            container.mux(packet)


def _stream(container, o: ExportOptions, fps: float, size: tuple[int, int]):
    import av

    rate = max(1, round(fps))
    if o.format == "gif":
        stream = container.add_stream("gif", rate=rate)
        stream.pix_fmt = "pal8"
    elif o.format == "webm":
        stream = container.add_stream("libvpx-vp9", rate=rate)
        crf = round(63 - o.quality * 0.58)  # quality 100 -> 5, 80 -> 17, 0 -> 63
        stream.options = {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4"}
        stream.pix_fmt = "yuv420p"
    elif "libx264" in av.codecs_available:
        stream = container.add_stream("libx264", rate=rate)
        crf = round(51 - o.quality * 0.46)  # quality 100 -> 5, 80 -> 14, 0 -> 51
        stream.options = {"crf": str(crf), "preset": "medium"}
        stream.pix_fmt = "yuv420p"
    else:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.bit_rate = int(size[0] * size[1] * rate * (0.5 + o.quality / 20))
        stream.pix_fmt = "yuv420p"
    stream.width, stream.height = size
    return stream


@dataclass(frozen=True)
class Palette:
    """At most 256 colours for GIF frames and a 32x32x32 table from 5-bit RGB to the nearest."""

    colours: np.ndarray  # (256, 3) uint8 RGB
    table: np.ndarray  # (32, 32, 32) uint8 index
    keys: np.ndarray | None  # sorted packed RGB of the colours when the clip has <= 256

    def index(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) uint8 indices and the (256, 4) palette (alpha, R, G, B) of PyAV's pal8."""
        if self.keys is not None:
            indices = np.searchsorted(self.keys, _pack(frame)).astype(np.uint8)
        else:
            q = frame >> 3
            indices = self.table[q[..., 0], q[..., 1], q[..., 2]]
        pal = np.zeros((256, 4), np.uint8)
        pal[:, 0] = 255  # opaque
        pal[:, 1:] = self.colours
        return np.ascontiguousarray(indices), pal


def _pack(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.int64)
    return (f[..., 0] << 16) | (f[..., 1] << 8) | f[..., 2]


def gif_palette(frames: np.ndarray) -> Palette:
    """The palette of a clip: its own colours when there are at most 256 (the demo's flat
    shapes come out exact), else 256 colours clustered from a sample of its pixels."""
    import cv2

    colours = np.zeros((256, 3), np.uint8)
    packed = np.unique(_pack(frames))
    if len(packed) <= 256:
        colours[: len(packed)] = np.stack(
            [(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1
        )
        keys, used = packed, colours[: len(packed)]
    else:
        pixels = frames.reshape(-1, 3)
        sample = pixels[np.random.default_rng(0).integers(0, len(pixels), 20_000)]
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
        _, _, centres = cv2.kmeans(
            sample.astype(np.float32), 256, None, criteria, 1, cv2.KMEANS_PP_CENTERS
        )
        colours = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
        keys, used = None, colours
    grid = (np.arange(32) * 8 + 4).astype(np.float32)
    cube = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    table = np.concatenate(
        [
            np.argmin(((part[:, None] - used[None].astype(np.float32)) ** 2).sum(-1), axis=1)
            for part in np.split(cube, 16)
        ]
    )
    return Palette(colours, table.astype(np.uint8).reshape(32, 32, 32), keys)
