"""The model manager: find, download, convert and check the released STARFlow-V 7B checkpoint.

Qt-free; the GUI drives it from a worker thread and shows `progress(done, total)` in bytes.

    manager = ModelManager(models_dir)
    text = manager.license_text()                      # show it; the user must accept it
    path = manager.fetch(accept_license=True, progress=cb, cancel=event)   # -> .safetensors
    path = manager.use_local("~/ckpts/starflow-v_7B_t2v_caus_480p_v3.pth")  # or a local file

Downloads resume from a `.part` file (kept when cancelled or interrupted), check free disk space
first, and are checked against the Hub's sha256 when it gives one. A `.pth` is converted once to
`.safetensors` (weights-only, memory-mapped load) next to it and reused afterwards. Every file is
checked tensor by tensor against the 7B manifest shipped with this package, reading only the
safetensors header or the `.pth` tensor metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..api import Cancelled, EngineError
from ..checkpoint import (
    DEPRECATED,
    convert_to_safetensors,
    open_state_dict,
    safetensors_header,
)

log = logging.getLogger(__name__)

DEFAULT_REPO = "apple/starflow"
DEFAULT_FILENAME = "starflow-v_7B_t2v_caus_480p_v3.pth"
DEFAULT_REVISION = "main"
LICENSE_FILES = ("LICENSE_MODEL", "LICENSE", "LICENSE.txt", "LICENSE.md")
LICENSE_URL = "https://github.com/apple/ml-starflow/blob/main/LICENSE_MODEL"
NOTE = "LICENSE.note"  # written where a repo has no licence file
MANIFEST_PATH = Path(__file__).with_name("starflow-v_7B_manifest.json")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

FILE_SUFFIXES = (
    *(".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".gguf", ".json", ".yaml", ".yml", ".txt"),
    *(".mp4", ".mov", ".mkv", ".webm", ".png", ".jpg", ".jpeg", ".webp", ".zip", ".tar"),
)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def is_repo_id(value: str | Path) -> bool:
    """ "owner/name[@revision]" naming no local file: a Hugging Face repo. Names and revisions
    may hold dots (Wan2.2-..., @v1.0); a name ending in a model or config file's suffix is a
    path."""
    text = str(value)
    repo = text.partition("@")[0]
    if not _REPO_ID.match(text) or Path(repo).suffix.lower() in FILE_SUFFIXES:
        return False
    return not Path(text).expanduser().exists()


Progress = Callable[[int, int | None], None]  # (bytes done, total bytes or None)
Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class HubSource:
    """Where the checkpoint lives on the Hub. endpoint None: HF_ENDPOINT / huggingface.co."""

    repo_id: str = DEFAULT_REPO
    filename: str = DEFAULT_FILENAME
    revision: str = DEFAULT_REVISION
    endpoint: str | None = None
    token: str | bool | None = None
    license_files: tuple[str, ...] = LICENSE_FILES

    def url(self, filename: str | None = None) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(
            self.repo_id, filename or self.filename, revision=self.revision, endpoint=self.endpoint
        )


# ---- disk space ---------------------------------------------------------------------------------
def free_bytes(path: Path) -> int:
    """Free bytes on the volume holding `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def check_disk_space(directory: Path, needed: int) -> None:
    """Raise EngineError when fewer than `needed` bytes are free where `directory` is."""
    free = free_bytes(directory)
    if needed > free:
        raise EngineError(
            f"not enough disk space in {directory}: need {_gb(needed)} ({needed} bytes), "
            f"only {_gb(free)} ({free} bytes) free"
        )


# ---- the Hub ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    url: str  # where the bytes are (the CDN after redirects)
    size: int | None
    etag: str | None
    commit: str | None

    @property
    def sha256(self) -> str | None:
        """The Hub's etag of an LFS file is its sha256."""
        return self.etag if self.etag and _SHA256.match(self.etag) else None


class NotOnHub(EngineError):
    """The repository exists but does not hold the requested file."""


def _hub_error(
    exc: Exception, source: HubSource, filename: str, other: str | None = None
) -> EngineError:
    """A user-facing error for a failed Hub request; `other`: the message for unrecognised errors."""
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{source.repo_id}@{source.revision}/{filename}"
    if isinstance(exc, OfflineModeIsEnabled):
        return EngineError(
            f"cannot download {where}: offline mode is on (HF_HUB_OFFLINE). "
            "Pick a local file or folder instead, or go online."
        )
    if isinstance(exc, GatedRepoError):
        return EngineError(
            f"{source.repo_id} is gated: accept its terms on the Hub and log in "
            "(huggingface-cli login or a token)"
        )
    if isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError):
        return EngineError(f"repository or revision not found: {source.repo_id}@{source.revision}")
    if isinstance(exc, EntryNotFoundError):
        return NotOnHub(f"file not found on the Hub: {where}")
    return EngineError(other or f"cannot reach the Hugging Face Hub for {where}: {exc}")


def remote_file(source: HubSource, filename: str | None = None) -> RemoteFile:
    """Size, etag and location of a file on the Hub (one HEAD request)."""
    from huggingface_hub import get_hf_file_metadata

    filename = filename or source.filename
    try:
        meta = get_hf_file_metadata(
            source.url(filename), token=source.token, endpoint=source.endpoint
        )
    except Exception as exc:  # offline, DNS, HTTP status, TLS: all become one message
        raise _hub_error(exc, source, filename) from exc
    return RemoteFile(meta.location, meta.size, meta.etag, meta.commit_hash)


class _ProgressBar:
    """What huggingface_hub's http_get calls as its tqdm: forwards byte counts, checks cancel."""

    def __init__(
        self,
        progress: Progress | None,
        cancel: threading.Event | None,
        total: int | None = None,
        initial: int = 0,
        **_: object,
    ) -> None:
        self.progress, self.cancel, self.total, self.n = progress, cancel, total, initial
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.n, self.total)

    def update(self, n: int = 1) -> None:
        # http_get calls this before writing the chunk: stop here and the bytes reported so far
        # are exactly the bytes on disk
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("download cancelled; the partial file is kept for resuming")
        self.n += n
        self._report()

    def close(self) -> None:
        pass

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bar_class(
    progress: Progress | None, cancel: threading.Event | None, total: int | None
) -> type:
    class Bar(_ProgressBar):
        def __init__(self, **kwargs: object) -> None:
            kwargs.pop("total", None)
            super().__init__(progress, cancel, total=total, **kwargs)

    return Bar


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _resume_offset(part: Path, remote: RemoteFile) -> int:
    """Bytes of `part` that belong to this remote file version (0 if none or another version)."""
    if not part.exists():
        return 0
    try:
        meta = json.loads(_sidecar(part).read_text())
    except (OSError, ValueError):
        meta = {}
    have = part.stat().st_size
    if meta.get("etag") != remote.etag or (remote.size is not None and have > remote.size):
        log.info("discarding partial download %s (other version or too long)", part.name)
        part.unlink()
        return 0
    return have


def download_file(
    source: HubSource,
    dest: Path,
    *,
    filename: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    reserve_copy: bool = False,
) -> Path:
    """Download one file to `dest`, resuming `dest.part`.

    Needs free space for the bytes still missing, plus the whole size again with `reserve_copy`
    (room for the .safetensors conversion). progress(done, total) is called per received chunk;
    setting `cancel` raises Cancelled and keeps the partial file.
    """
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    filename = filename or source.filename
    remote = remote_file(source, filename)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = _resume_offset(part, remote)
    size = remote.size or 0
    check_disk_space(dest.parent, size - offset + (size if reserve_copy else 0))
    _sidecar(part).write_text(
        json.dumps({"etag": remote.etag, "size": remote.size, "commit": remote.commit})
    )
    if offset:
        log.info("resuming %s at %d of %s bytes", filename, offset, remote.size)
    with part.open("ab") as handle:
        try:
            http_get(
                remote.url,
                handle,
                resume_size=offset,
                expected_size=remote.size,
                headers=build_hf_headers(token=source.token),
                displayed_filename=filename,
                tqdm_class=_bar_class(progress, cancel, remote.size),
            )
        except Cancelled:
            raise
        except Exception as exc:
            # the Hub's own errors keep their message; anything else stopped the transfer mid-way
            stopped = (
                f"download of {filename} stopped at {handle.tell()} bytes ({exc}); "
                "it resumes from there next time"
            )
            raise _hub_error(exc, source, filename, stopped) from exc
    _check_sha256(part, remote)
    part.replace(dest)
    _sidecar(part).unlink(missing_ok=True)
    return dest


def _check_sha256(part: Path, remote: RemoteFile) -> None:
    if remote.sha256 is None:
        return
    digest = hashlib.sha256()
    with part.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    if digest.hexdigest() != remote.sha256:
        part.unlink()
        _sidecar(part).unlink(missing_ok=True)
        raise EngineError(
            f"downloaded file {part.name} is corrupt (sha256 mismatch); it was removed, "
            "download again"
        )


# ---- licences -----------------------------------------------------------------------------------
def _card_license(source: HubSource, folder: Path) -> str | None:
    """The `license:` field of the repo's model card (README.md front matter), if any."""
    try:
        path = download_file(source, folder / "README.md", filename="README.md")
    except NotOnHub:
        return None
    match = re.search(r"^license:\s*(\S+)", path.read_text(errors="replace"), re.M)
    return match.group(1) if match else None


def fetch_license(source: HubSource, folder: Path, web_page: str | None = None) -> str:
    """The licence text: a licence file of the repo (fetched once, then read from disk), or else a
    note naming the model card's licence. A repo without a licence file still gets a text to accept."""
    for name in (*source.license_files, NOTE):
        if (folder / name).exists():
            return (folder / name).read_text(encoding="utf-8", errors="replace")
    page = web_page or f"https://huggingface.co/{source.repo_id}"
    try:
        for name in source.license_files:
            try:
                path = download_file(source, folder / name, filename=name)
            except NotOnHub:
                continue
            return path.read_text(encoding="utf-8", errors="replace")
        card = _card_license(source, folder)
    except EngineError as exc:
        raise EngineError(f"cannot fetch the licence ({exc}); read it at {page}") from exc
    named = f"its model card names the licence {card!r}" if card else "its model card has none"
    text = f"{source.repo_id} has no licence file; {named}. Read it at {page}\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NOTE).write_text(text)  # found offline next time
    return text


# ---- checking files against the manifest --------------------------------------------------------
def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the released 7B checkpoint."""
    data = json.loads(Path(path).read_text())
    return {name: tuple(shape) for name, shape in data["parameters"].items()}


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a .safetensors header alone (checked: truncated or corrupt files raise
    EngineError naming the file)."""
    header = safetensors_header(path)
    header.pop("__metadata__", None)
    return {name: tuple(entry["shape"]) for name, entry in header.items()}


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a .safetensors (header only) or .pth (mmap metadata) file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EngineError(f"model file not found: {path}")
    if path.suffix == ".safetensors":
        return safetensors_shapes(path)
    state = open_state_dict(path)
    odd = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if odd:
        log.warning(
            "%s: ignoring %d non-tensor entries: %s", path.name, len(odd), ", ".join(odd[:8])
        )
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


@dataclass(frozen=True)
class ManifestReport:
    """How a file's tensors differ from the manifest (deprecated buffers may be absent)."""

    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[
        tuple[str, tuple[int, ...], tuple[int, ...]], ...
    ] = ()  # (name, file, manifest)
    absent_deprecated: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 8) -> str:
        parts = []
        if self.missing:
            parts.append(
                f"missing tensors ({len(self.missing)}): {', '.join(self.missing[:limit])}"
            )
        if self.unexpected:
            parts.append(
                f"unexpected tensors ({len(self.unexpected)}): {', '.join(self.unexpected[:limit])}"
            )
        if self.mismatched:
            shown = "; ".join(
                f"{k}: file {list(a)} vs expected {list(b)}" for k, a, b in self.mismatched[:limit]
            )
            parts.append(f"mis-shaped tensors ({len(self.mismatched)}): {shown}")
        return " | ".join(parts) or "all tensors match"


def compare_shapes(shapes: Shapes, manifest: Shapes) -> ManifestReport:
    """Compare every name and shape; deprecated buffers the file lacks are not missing."""
    absent = sorted(k for k in manifest if k not in shapes and DEPRECATED.match(k))
    missing = sorted(k for k in manifest if k not in shapes and not DEPRECATED.match(k))
    unexpected = sorted(k for k in shapes if k not in manifest)
    mismatched = [
        (k, tuple(shapes[k]), tuple(manifest[k]))
        for k in sorted(shapes)
        if k in manifest and tuple(shapes[k]) != tuple(manifest[k])
    ]
    return ManifestReport(tuple(missing), tuple(unexpected), tuple(mismatched), tuple(absent))


def verify_checkpoint(path: str | Path, manifest: Shapes | None = None) -> ManifestReport:
    """Check a checkpoint against the manifest; EngineError naming every difference."""
    report = compare_shapes(
        tensor_shapes(path), manifest if manifest is not None else load_manifest()
    )
    if not report.ok:
        raise EngineError(
            f"{Path(path).name} is not the STARFlow-V 7B checkpoint: {report.describe()}"
        )
    return report


# ---- conversion ---------------------------------------------------------------------------------
def converted_path(pth: Path) -> Path:
    return pth.with_suffix(".safetensors")


def convert_once(pth: Path, manifest: Shapes | None = None) -> Path:
    """The .safetensors next to `pth`, converting (weights-only, mmap) unless a valid one is newer."""
    dst = converted_path(pth)
    if dst.exists() and dst.stat().st_mtime >= pth.stat().st_mtime:
        try:
            verify_checkpoint(dst, manifest)
            log.info("reusing converted checkpoint %s", dst.name)
            return dst
        except EngineError as exc:
            log.warning("converting again: %s", exc)
    check_disk_space(dst.parent, pth.stat().st_size)
    log.info("converting %s to safetensors", pth.name)
    convert_to_safetensors(pth, dst)
    verify_checkpoint(dst, manifest)
    return dst


# ---- the manager --------------------------------------------------------------------------------
class ModelManager:
    """Resolves the 7B checkpoint to a verified .safetensors path, from disk or from the Hub.

    Downloads go to `models_dir/<owner>--<name>/<revision>/<filename>`.
    """

    def __init__(
        self,
        models_dir: str | Path,
        source: HubSource | None = None,
        manifest_path: Path = MANIFEST_PATH,
    ) -> None:
        self.models_dir = Path(models_dir).expanduser()
        self.source = source or HubSource()
        self.manifest = load_manifest(manifest_path)

    @property
    def folder(self) -> Path:
        return self.models_dir / self.source.repo_id.replace("/", "--") / self.source.revision

    @property
    def download_path(self) -> Path:
        return self.folder / Path(self.source.filename).name

    def local_checkpoint(self) -> Path | None:
        """A complete earlier download (converted if it was a .pth), or None."""
        path = self.download_path
        if path.suffix == ".pth" and converted_path(path).exists():
            return converted_path(path)
        return path if path.exists() else None

    title = "STARFlow-V 7B flow"

    def license_text(self) -> str:
        """The model licence: fetched from the repository once, then read from disk."""
        return fetch_license(self.source, self.folder, LICENSE_URL)

    def local(self) -> Path | None:
        return self.local_checkpoint()

    def size(self) -> tuple[int, int]:
        """(bytes still to download, bytes of the checkpoint) as the Hub gives them."""
        if self.local_checkpoint() is not None:
            path = self.local_checkpoint()
            return 0, path.stat().st_size
        total = remote_file(self.source).size or 0
        part = self.download_path.with_name(self.download_path.name + ".part")
        return total - (part.stat().st_size if part.exists() else 0), total

    def fetch(
        self,
        *,
        accept_license: bool,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> Path:
        """Download (or resume) the checkpoint, convert a .pth once, verify; -> .safetensors path."""
        if not accept_license:
            raise EngineError(
                "the STARFlow model licence must be accepted before downloading "
                f"(see ModelManager.license_text() or {LICENSE_URL})"
            )
        done = self.local_checkpoint()
        if done is not None:
            return self.use_local(done)
        path = self.download_path
        download_file(
            self.source,
            path,
            progress=progress,
            cancel=cancel,
            reserve_copy=path.suffix != ".safetensors",
        )
        return self.use_local(path)

    def use_local(self, path: str | Path) -> Path:
        """Verify a local .safetensors, or check then convert a .pth once; -> .safetensors path."""
        path = Path(path).expanduser()
        if path.suffix not in (".safetensors", ".pth", ".pt", ".bin"):
            raise EngineError(
                f"unsupported model file type {path.suffix!r} (use .safetensors or .pth)"
            )
        verify_checkpoint(path, self.manifest)
        return path if path.suffix == ".safetensors" else convert_once(path, self.manifest)
