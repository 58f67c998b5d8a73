"""Qt-free image and video IO: decoding with clear errors, streamed MP4 writing that never
leaves a half-written file under the final name."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from .api import EngineError

MAX_PIXELS = 100_000_000
IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
VIDEO_TYPES = {".mp4", ".mov", ".webm", ".gif", ".mkv", ".avi"}


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB. Huge images are refused before decoding."""
    import cv2

    path = Path(path)
    if path.suffix.lower() not in IMAGE_TYPES:
        raise EngineError(f"unsupported image type {path.suffix!r} (use PNG, JPEG or WebP)")
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    if data is None:
        raise EngineError(f"image not found: {path}")
    header = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if header is not None and header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise EngineError(f"{path.name} is too large (over {MAX_PIXELS // 1_000_000} megapixels)")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise EngineError(f"{path.name} is not a readable image (corrupt or truncated)")
    return np.ascontiguousarray(img[:, :, ::-1])


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """A video file -> ((T, H, W, 3) uint8 RGB, fps)."""
    import av

    path = Path(path)
    if path.suffix.lower() not in VIDEO_TYPES:
        raise EngineError(f"unsupported video type {path.suffix!r} (use MP4, MOV, WebM or GIF)")
    if not path.is_file():
        raise EngineError(f"video not found: {path}")
    frames = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 16)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
    except (av.FFmpegError, IndexError, ValueError) as exc:
        raise EngineError(f"{path.name} is not a readable video: {exc}") from exc
    if not frames:
        raise EngineError(f"{path.name} has no video frames")
    return np.stack(frames), fps


class VideoWriter:
    """Streams RGB frames into an MP4 (H.264 when available, else MPEG-4), written to a temporary
    name beside `path` and renamed on close(); abort() removes it."""

    def __init__(self, path: str | Path, fps: int, width: int, height: int,
                 metadata: dict[str, str] | None = None) -> None:
        import av

        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.part")
        self.size = (width + width % 2, height + height % 2)
        try:
            self.container = av.open(str(self.tmp), mode="w", format="mp4",
                                     options={"movflags": "use_metadata_tags"})
            for key, value in (metadata or {}).items():
                self.container.metadata[key] = value
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self.stream = self.container.add_stream(codec, rate=int(fps))
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p"
        except OSError as exc:
            self._cleanup()
            raise _disk_error(exc, self.path) from exc

    def write(self, frames: np.ndarray) -> None:
        import av

        try:
            for frame in frames:
                if frame.shape[1::-1] != self.size:
                    frame = np.pad(frame, ((0, self.size[1] - frame.shape[0]), (0, self.size[0] - frame.shape[1]), (0, 0)), mode="edge")
                for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    self.container.mux(packet)
        except OSError as exc:
            self.abort()
            raise _disk_error(exc, self.path) from exc

    def close(self) -> None:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self._cleanup()
            raise _disk_error(exc, self.path) from exc

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a broken container may fail; the file goes anyway
            pass
        self._cleanup()

    def _cleanup(self) -> None:
        self.tmp.unlink(missing_ok=True)


def _disk_error(exc: OSError, path: Path) -> EngineError:
    if exc.errno == errno.ENOSPC:
        return EngineError(f"the disk is full: {path.name} was not written")
    return EngineError(f"cannot write {path}: {exc.strerror or exc}")
