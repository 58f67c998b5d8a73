"""The 7B's companion parts, fetched like the flow checkpoint: the T5 text encoder and the Wan2.2 VAE.

    manager = PartManager(models_dir, TEXT_ENCODER)
    manager.size()                                    # bytes still to download (after HEAD requests)
    manager.license_text()                            # the licence file, or the model card's licence
    folder = manager.fetch(accept_license=True, progress=cb, cancel=event)
    folder = manager.use_local("~/models/flan-t5-xl")  # or a folder (a VAE: also Wan2.2_VAE.pth)

A part is a set of files from one Hub repository, downloaded with `hub.download_file` (progress,
cancel, resume from `.part`, sha256 check) after one disk-space check for them all, into
`models_dir/<owner>--<name>/<revision>/`. Sharded weights are fetched only where they hold tensors
the part needs (flan-t5-xl's encoder and embedding), and the index is rewritten to those.

`locate(...)` turns LargeOptions' `text_encoder` / `vae` (a folder, a file or a repo id) into a
local path before anything loads, so a part that is missing offline is a clear error up front.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..api import EngineError
from .hub import (
    HubSource,
    NotOnHub,
    Progress,
    RemoteFile,
    check_disk_space,
    download_file,
    fetch_license,
    is_repo_id,
    remote_file,
    safetensors_shapes,
)

log = logging.getLogger(__name__)

INDEX = "model.safetensors.index.json"
Check = Callable[[Path], Path]  # a local file or folder -> the folder to load (EngineError if bad)


@dataclass(frozen=True)
class Part:
    """What to fetch for one part and how to check it."""

    key: str  # the command line's name: "text-encoder", "vae"
    title: str
    repo_id: str
    files: tuple[str, ...]  # always needed
    optional: tuple[str, ...] = ()  # fetched where the repo has them
    keep: str | None = None  # sharded weights: regex of the tensor names needed (via INDEX)
    subfolder: str = ""  # where the loadable folder is inside the download


TEXT_ENCODER = Part(
    "text-encoder",
    "T5 text encoder",
    "google/flan-t5-xl",
    files=("config.json",),
    optional=("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"),
    keep=r"^(shared|encoder)\.",
)
VAE = Part(
    "vae",
    "Wan2.2 VAE",
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    files=("vae/config.json", "vae/diffusion_pytorch_model.safetensors"),
    subfolder="vae",
)
PARTS = {p.key: p for p in (TEXT_ENCODER, VAE)}


# ---- the manager --------------------------------------------------------------------------------
class PartManager:
    """Resolves one part to a checked local folder, from disk or from the Hub."""

    def __init__(
        self,
        models_dir: str | Path,
        part: Part,
        revision: str = "main",
        endpoint: str | None = None,
        token: str | bool | None = None,
        check: Check | None = None,
    ) -> None:
        self.models_dir = Path(models_dir).expanduser()
        self.part = part
        self.title = part.title
        self.source = HubSource(
            repo_id=part.repo_id,
            filename=part.files[0],
            revision=revision,
            endpoint=endpoint,
            token=token,
        )
        self.check = check or CHECKS[part.key]

    @property
    def folder(self) -> Path:
        return self.models_dir / self.part.repo_id.replace("/", "--") / self.source.revision

    @property
    def target(self) -> Path:
        """The folder that is loaded (the download's subfolder, if any)."""
        return self.folder / self.part.subfolder if self.part.subfolder else self.folder

    @property
    def _done_marker(self) -> Path:
        return self.folder / ".complete"

    def local(self) -> Path | None:
        """A complete earlier download, or None."""
        return self.target if self._done_marker.exists() else None

    def license_text(self) -> str:
        return fetch_license(self.source, self.folder)

    # ---- planning -------------------------------------------------------------------------------
    def _weights(self) -> list[str]:
        """Weight files: the shards of INDEX that hold `keep` tensors (the index is rewritten to
        them), or model.safetensors where the repo has no index."""
        try:
            index_path = download_file(self.source, self.folder / INDEX, filename=INDEX)
        except NotOnHub:
            return ["model.safetensors"]
        index = json.loads(index_path.read_text())
        keep = re.compile(self.part.keep or ".")
        needed = {k: v for k, v in index["weight_map"].items() if keep.search(k)}
        if not needed:
            raise EngineError(f"{self.part.repo_id}'s {INDEX} lists no tensor the part needs")
        if len(needed) < len(index["weight_map"]):
            index["weight_map"] = needed
            index_path.write_text(json.dumps(index, indent=2))
        return sorted(set(needed.values()))

    def plan(self) -> list[tuple[str, RemoteFile | None]]:
        """(filename, remote file) for every file of the part; remote None: already on disk."""
        names = list(self.part.files)
        for name in self.part.optional:
            try:
                remote_file(self.source, name)
            except NotOnHub:
                continue
            names.append(name)
        if self.part.keep is not None:
            names += self._weights()
        return [
            (name, None if (self.folder / name).exists() else remote_file(self.source, name))
            for name in names
        ]

    def size(self) -> tuple[int, int]:
        """(bytes still to download, bytes of the whole part) as the Hub gives them (on disk: 0 and
        the folder's size, with no request)."""
        if self.local() is not None:
            return 0, json.loads(self._done_marker.read_text()).get("bytes", 0)
        rows = self.plan()
        missing = sum(r.size or 0 for _, r in rows if r is not None)
        have = sum((self.folder / n).stat().st_size for n, r in rows if r is None)
        return missing, missing + have

    # ---- fetching -------------------------------------------------------------------------------
    def fetch(
        self,
        *,
        accept_license: bool,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> Path:
        """Download (or resume) every file, check the folder; -> the folder to load."""
        if not accept_license:
            raise EngineError(f"the {self.title}'s licence must be accepted before downloading")
        done = self.local()
        if done is not None:
            return done
        planned = self.plan()
        rows = [(n, r) for n, r in planned if r is not None]
        total = sum(r.size or 0 for _, r in rows)
        partial = sum(_part_size(self.folder / n) for n, _ in rows)
        check_disk_space(self.folder, total - partial)
        base = 0
        for name, remote in rows:
            report = None
            if progress is not None:
                report = _offset(progress, base, total)
            download_file(
                self.source, self.folder / name, filename=name, progress=report, cancel=cancel
            )
            base += remote.size or 0
        path = self.check(self.target)
        whole = sum((self.folder / n).stat().st_size for n, _ in planned)
        self._done_marker.write_text(json.dumps({"repo": self.part.repo_id, "bytes": whole}))
        return path

    def use_local(self, path: str | Path) -> Path:
        """Check a local folder (or file) of this part; -> the folder to load."""
        return self.check(Path(path).expanduser())


def _offset(progress: Progress, base: int, total: int) -> Progress:
    return lambda done, _total: progress(base + done, total)


def _part_size(path: Path) -> int:
    part = path.with_name(path.name + ".part")
    return part.stat().st_size if part.exists() else 0


# ---- checks -------------------------------------------------------------------------------------
def _read_config(folder: Path, what: str) -> dict:
    if not folder.is_dir():
        raise EngineError(f"{what} not found: {folder}")
    config = folder / "config.json"
    if not config.is_file():
        raise EngineError(f"{what} folder {folder} has no config.json")
    try:
        return json.loads(config.read_text())
    except ValueError as exc:
        raise EngineError(f"{config} is not valid JSON: {exc}") from exc


def _weight_names(folder: Path) -> set[str] | None:
    """Tensor names of the folder's safetensors weights (index or single file); None: no such files."""
    index = folder / INDEX
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        absent = [s for s in shards if not (folder / s).is_file()]
        if absent:
            raise EngineError(
                f"{folder} lacks weight files named in its index: {', '.join(absent)}"
            )
        return {name for s in shards for name in safetensors_shapes(folder / s)}
    single = folder / "model.safetensors"
    return set(safetensors_shapes(single)) if single.is_file() else None


def check_text_encoder(path: Path, d_model: int | None = None) -> Path:
    """A T5 folder: its config (`d_model` wide where given; the loader checks the width against
    the flow's txt_dim), a tokenizer, and the encoder's weights."""
    config = _read_config(path, "text encoder")
    if config.get("model_type") != "t5":
        raise EngineError(f"{path} is not a T5 model (model_type {config.get('model_type')!r})")
    if d_model is not None and config.get("d_model") != d_model:
        raise EngineError(
            f"{path}: a T5 of width {d_model} is needed, this one is {config.get('d_model')}"
        )
    if not any((path / n).is_file() for n in ("spiece.model", "tokenizer.json")):
        raise EngineError(f"{path} has no tokenizer (spiece.model or tokenizer.json)")
    names = _weight_names(path)
    if names is None:
        if not (path / "pytorch_model.bin").is_file():
            raise EngineError(f"{path} has no weights (model.safetensors or {INDEX})")
        return path
    if not any(n.startswith("encoder.block.") for n in names) or not (
        "shared.weight" in names or "encoder.embed_tokens.weight" in names
    ):
        raise EngineError(f"{path}: its weights lack the T5 encoder (encoder.* and shared.weight)")
    return path


def check_vae(path: Path) -> Path:
    """A diffusers Wan2.2 VAE folder (config.json + weights, or their `vae/` subfolder), or the
    reference's Wan2.2_VAE.pth converted once into a folder beside it; every tensor checked."""
    from .wan_vae import check_vae_folder, convert_once

    if path.is_file():
        return convert_once(path)
    if not (path / "config.json").exists() and (path / "vae" / "config.json").exists():
        path = path / "vae"
    _read_config(path, "video VAE")
    return check_vae_folder(path)


CHECKS: dict[str, Check] = {"text-encoder": check_text_encoder, "vae": check_vae}


# ---- before loading -----------------------------------------------------------------------------
def _in_hf_cache(repo_id: str, part: Part, revision: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, part.files[0], revision=revision)
    return isinstance(found, str)


def manager_for(
    key: str, value: str, models_dir: str | Path, endpoint: str | None = None
) -> PartManager:
    """The manager of part `key` ("text-encoder", "vae") for a repo id "owner/name[@revision]"."""
    repo, _, revision = value.partition("@")
    return PartManager(
        models_dir, replace(PARTS[key], repo_id=repo), revision or "main", endpoint=endpoint
    )


def locate(
    key: str,
    value: str,
    models_dir: str | Path,
    *,
    download: bool = False,
    progress: Progress | None = None,
) -> str:
    """LargeOptions' text_encoder / vae value -> what to load: a checked local folder, or a repo
    id found in the Hugging Face cache. Downloads through the manager only with `download`
    (the licence accepted); otherwise a missing part is an EngineError saying how to get it."""
    part = PARTS[key]
    path = Path(value).expanduser()
    if path.exists():
        return str(PartManager(models_dir, part).use_local(path))
    if not is_repo_id(value):
        raise EngineError(f"{part.title} not found: {value}")
    manager = manager_for(key, value, models_dir)
    done = manager.local()
    if done is not None:
        return str(manager.use_local(done))  # checked again: files may have gone since
    if _in_hf_cache(manager.source.repo_id, part, manager.source.revision):
        return value
    import huggingface_hub.constants

    if download and not huggingface_hub.constants.HF_HUB_OFFLINE:
        log.info("downloading the %s (%s) into %s", part.title, value, manager.folder)
        return str(manager.fetch(accept_license=True, progress=progress))
    why = "the Hub is offline (HF_HUB_OFFLINE)" if huggingface_hub.constants.HF_HUB_OFFLINE else ""
    flag = "--text-encoder" if key == "text-encoder" else "--vae"
    raise EngineError(
        f"the {part.title} ({value}) is not downloaded{' and ' + why if why else ''}: "
        f"run `python -m engine models download {key}` (or pass --accept-license online), "
        f"or pass {flag} FOLDER"
    )


def locate_parts(
    text_encoder: str, vae: str, models_dir: str | Path, download: bool = False
) -> tuple[str, str]:
    """Both parts located before the flow loads; one EngineError naming every part missing."""
    found, errors = [], []
    for key, value in (("text-encoder", text_encoder), ("vae", vae)):
        try:
            found.append(
                locate(key, value, models_dir, download=download, progress=_log_progress(key))
            )
        except EngineError as exc:
            errors.append(str(exc))
    if errors:
        raise EngineError("; ".join(errors))
    return found[0], found[1]


def _log_progress(key: str) -> Progress:
    last = [-1]

    def report(done: int, total: int | None) -> None:
        step = int(20 * done / total) if total else -1
        if step != last[0]:
            last[0] = step
            log.info("%s: %.2f of %s GB", key, done / 1e9, f"{total / 1e9:.2f}" if total else "?")

    return report
