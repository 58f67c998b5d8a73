"""Qt-free image and video IO with clear errors; writers that never leave a half-written file.

    image = read_image("start.png")                      # (H, W, 3) uint8 RGB
    video, fps = read_video("clip.mp4", max_frames=64)   # (T, H, W, 3) uint8 RGB, frames/s
    with VideoWriter("out.mp4", fps=16, width=64, height=48, metadata={"prompt": "..."}) as w:
        w.write(frames)                                  # (n, H, W, 3) uint8 RGB, streamed
    write_png("frame.png", frame)

Every failure the user can act on (missing, corrupt, truncated, unsupported or huge files, a
full disk) raises `EngineError` with a one-line message. Writers go to a temporary file beside
the target and rename it into place only when complete.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .api import EngineError

log = logging.getLogger(__name__)

MAX_PIXELS = 100_000_000  # images (and video frames) above this are refused before decoding
MAX_VIDEO_BYTES = 4 << 30  # decoded clip size above which read_video stops with an error
IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".webp"}
VIDEO_TYPES = {".mp4", ".mov", ".webm", ".gif", ".mkv", ".avi", ".m4v"}


# ---- images ----------------------------------------------------------------------------------
def image_header(data: bytes) -> tuple[str, int, int]:
    """The format and (width, height) from a PNG / JPEG / WebP header, without decoding pixels."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise EngineError("truncated PNG header")
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:2] == b"\xff\xd8":
        return ("jpeg", *_jpeg_size(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ("webp", *_webp_size(data))
    raise EngineError("not a PNG, JPEG or WebP image")


SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    for marker, start, _length in _jpeg_markers(data):
        if marker in SOF_MARKERS and start + 5 <= len(data):
            h, w = struct.unpack(">HH", data[start + 1 : start + 5])
            return w, h
    raise EngineError("truncated JPEG header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise EngineError("corrupt or truncated WebP header")


def _png_has_end(data: bytes) -> bool:
    """Whether the PNG's chunks reach an IEND chunk (bytes after it are ignored, as viewers do)."""
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IEND":
            return True
        pos += 12 + length  # length, type, data, CRC
    return False


def _jpeg_markers(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, segment start, segment length) of a JPEG's header segments, up to the first scan."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise EngineError("corrupt JPEG header")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        yield marker, i + 4, length - 2
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        i += 2 + length


def _jpeg_has_end(data: bytes) -> bool:
    """Whether an end-of-image marker follows the first scan (bytes after it are ignored). The
    entropy-coded data cannot hold FF D9 (its FF bytes are stuffed), an EXIF thumbnail before the
    scan can, so the search starts at the scan."""
    scan = next((start for marker, start, _ in _jpeg_markers(data) if marker == 0xDA), None)
    return scan is not None and data.find(b"\xff\xd9", scan) >= 0


def jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) of a JPEG, 1 where it has none or it cannot be read."""
    try:
        for marker, start, length in _jpeg_markers(data):
            if marker == 0xE1 and data[start : start + 6] == b"Exif\x00\x00":
                return _tiff_orientation(data[start + 6 : start + length])
    except (EngineError, struct.error):
        pass
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
    for k in range(count):
        entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == 0x0112 and kind == 3:  # Orientation, a SHORT held in the value field
            value = struct.unpack(order + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """An image as stored -> as shown, for an EXIF orientation 1..8 (6: the phone held upright)."""
    if orientation in (5, 6, 7, 8):
        img = img.transpose(1, 0, 2)  # 5 as is; 6, 7, 8 are 5 flipped
        if orientation == 6:
            img = img[:, ::-1]
        elif orientation == 7:
            img = img[::-1, ::-1]
        elif orientation == 8:
            img = img[::-1]
    elif orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    return img


def _looks_complete(kind: str, data: bytes) -> bool:
    """Cheap end-of-file checks: decoders silently grey-fill some truncated files."""
    if kind == "png":
        return _png_has_end(data)
    if kind == "jpeg":
        return _jpeg_has_end(data)
    return len(data) >= 8 + int.from_bytes(data[4:8], "little")  # webp: RIFF size


def read_image(path: str | Path) -> np.ndarray:
    """A PNG / JPEG / WebP file -> (H, W, 3) uint8 RGB (alpha dropped, 16-bit reduced to 8), a
    JPEG turned as its EXIF orientation says.

    Raises EngineError for missing, unsupported, corrupt, truncated, huge (> MAX_PIXELS) or
    extremely narrow (sides over MAX_ASPECT to 1) files, the size checked from the header before
    decoding."""
    import cv2

    from .limits import check_aspect

    path = Path(path)
    if path.suffix.lower() not in IMAGE_TYPES:
        raise EngineError(f"{path.name}: unsupported image type (use PNG, JPEG or WebP)")
    if not path.is_file():
        raise EngineError(f"image not found: {path}")
    data = path.read_bytes()
    try:
        kind, w, h = image_header(data)
    except EngineError as exc:
        raise EngineError(f"{path.name} is not a readable image ({exc})") from None
    if w * h > MAX_PIXELS:
        raise EngineError(
            f"{path.name} is too large ({w} x {h}; the limit is {MAX_PIXELS // 1_000_000} megapixels)"
        )
    if w < 1 or h < 1 or not _looks_complete(kind, data):
        raise EngineError(f"{path.name} is not a readable image (corrupt or truncated)")
    check_aspect(w, h, path.name)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # turned here, the same everywhere
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None or img.shape[:2] != (h, w):
        raise EngineError(f"{path.name} is not a readable image (corrupt or truncated)")
    if kind == "jpeg":
        img = orient(img, jpeg_orientation(data))
    return np.ascontiguousarray(img[:, :, ::-1])


# ---- video -----------------------------------------------------------------------------------
def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """An MP4 / MOV / WebM / GIF file -> ((T, H, W, 3) uint8 RGB, frames per second).

    Reads at most `max_frames` frames. Raises EngineError for missing, unsupported, corrupt or
    empty files, frames over MAX_PIXELS, or clips too long to hold in memory."""
    import av

    path = Path(path)
    if path.suffix.lower() not in VIDEO_TYPES:
        raise EngineError(f"{path.name}: unsupported video type (use MP4, MOV, WebM or GIF)")
    if not path.is_file():
        raise EngineError(f"video not found: {path}")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise EngineError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            if stream.width * stream.height > MAX_PIXELS:
                raise EngineError(
                    f"{path.name}: frames too large ({stream.width} x {stream.height})"
                )
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 16.0
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
                if len(frames) * frames[0].nbytes > MAX_VIDEO_BYTES:
                    raise EngineError(f"{path.name} is too long to load ({len(frames)}+ frames)")
    except (av.FFmpegError, ValueError, IndexError) as exc:
        if not frames:
            raise EngineError(
                f"{path.name} is not a readable video (corrupt or unsupported)"
            ) from exc
        log.warning("%s: decoding stopped after %d frames: %s", path.name, len(frames), exc)
    if not frames:
        raise EngineError(f"{path.name} has no video frames")
    if any(f.shape != frames[0].shape for f in frames):
        raise EngineError(f"{path.name}: frame size changes inside the clip")
    return np.stack(frames), fps


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same path once resolved, or the same inode (a hard
    link, another mount of it)."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
        return os.path.samefile(a, b)
    except (OSError, RuntimeError):
        return False


def disk_error(exc: OSError, path: str | Path) -> EngineError:
    """An OSError while writing `path` -> a one-line EngineError (full disk named as such)."""
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return EngineError(f"the disk is full: {Path(path).name} was not written")
    return EngineError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}")


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so that it is never changed)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def user_mode(path: Path) -> None:
    """Give a file written by a library that makes it 0600 the mode the umask gives new files."""
    os.chmod(path, 0o666 & ~current_umask())


def temp_beside(path: Path) -> Path:
    """A new empty file `.<name>.<random>.part` beside `path`, created with the user's umask
    (as the final file would be; mkstemp's would be 0600)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class VideoWriter:
    """Streams RGB frames into an MP4: H.264 (libx264, yuv420p) when available, else MPEG-4.

    Odd sizes are padded to even by repeating the last row/column. Frames go to a temporary
    file beside `path`, renamed into place by close(); abort() (or any error) removes it.
    `metadata` (e.g. prompt, seed, model) is written into the container's tags.
    Usable as a context manager: close on success, abort on an exception."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        width: int,
        height: int,
        metadata: dict[str, str] | None = None,
    ) -> None:
        import av

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.size = (self.width + self.width % 2, self.height + self.height % 2)
        self.frames = 0
        self.container = None
        if not self.path.parent.is_dir():
            raise EngineError(f"folder not found: {self.path.parent}")
        try:
            self.tmp = temp_beside(self.path)
            self.container = av.open(
                str(self.tmp), mode="w", format="mp4", options={"movflags": "use_metadata_tags"}
            )
            for key, value in (metadata or {}).items():
                self.container.metadata[str(key)] = str(value)
            if "libx264" in av.codecs_available:
                self.stream = self.container.add_stream("libx264", rate=round(fps))
                self.stream.options = {"crf": "17", "preset": "medium"}
            else:
                self.stream = self.container.add_stream("mpeg4", rate=round(fps))
                self.stream.bit_rate = 8_000_000
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p"
        except OSError as exc:
            self._cleanup()
            raise disk_error(exc, self.path) from exc
        except BaseException:  # a signal or Ctrl-C while opening: no temporary is left
            self._cleanup()
            raise

    def write(self, frames: np.ndarray) -> None:
        """Append frames: (n, H, W, 3) or (H, W, 3) uint8 RGB at the writer's size."""
        import av

        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.shape[1:] != (self.height, self.width, 3):
            raise EngineError(
                f"expected frames of shape (n, {self.height}, {self.width}, 3) uint8, "
                f"got {frames.shape} {frames.dtype}"
            )
        pad = ((0, 0), (0, self.size[1] - self.height), (0, self.size[0] - self.width), (0, 0))
        if any(p[1] for p in pad):
            frames = np.pad(frames, pad, mode="edge")
        try:
            for frame in frames:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in self.stream.encode(vf):
                    self.container.mux(packet)
                self.frames += 1
        except OSError as exc:
            self.abort()
            raise disk_error(exc, self.path) from exc

    def close(self) -> None:
        """Flush, close and rename the file into place."""
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
            self.container = None
            _fsync(self.tmp)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise disk_error(exc, self.path) from exc

    def abort(self) -> None:
        """Stop writing and remove the temporary file; the target is left untouched."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - closing a broken container may fail; the file goes anyway
                log.debug("closing an aborted video container failed", exc_info=True)
            self.container = None
        self._cleanup()

    def _cleanup(self) -> None:
        tmp = getattr(self, "tmp", None)
        if tmp is not None:
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ---- atomic small files ----------------------------------------------------------------------
def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through `write(fileobj)` into a temporary beside `path`, fsync, then rename.

    On any error the temporary is removed and `path` keeps its old content (OSErrors, a full
    disk included, become EngineError)."""
    path = Path(path)
    tmp: Path | None = None
    try:
        tmp = temp_beside(path)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise disk_error(exc, path) from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink(missing_ok=True)


def write_png(path: str | Path, frame: np.ndarray) -> None:
    """Write one (H, W, 3) uint8 RGB frame as a PNG, atomically."""
    import cv2

    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise EngineError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))
    if not ok:
        raise EngineError(f"cannot encode {Path(path).name} as PNG")
    atomic_write(path, lambda f: f.write(buf.tobytes()))
