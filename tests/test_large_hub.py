"""The model manager against a fake Hub on 127.0.0.1: progress, resume, disk check, licence,
conversion, manifest checks and every error path. Nothing leaves this machine."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import REPO_ROOT
from engine.api import Cancelled, EngineError
from engine.checkpoint import expected_manifest
from engine.config import FlowConfig
from engine.starflow_v import hub
from engine.starflow_v.hub import (
    HubSource,
    ModelManager,
    compare_shapes,
    load_manifest,
    verify_checkpoint,
)

REPO = "apple/starflow"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LICENSE = "Apple Machine Learning Research Model License (test copy)\n"


class FakeHub:
    """Serves /{repo}/resolve/{revision}/{file} with HEAD, GET and byte ranges, as the Hub does."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_at: int | None = None  # drop every connection once this byte offset is reached
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, name: str, data: bytes, repo: str = REPO) -> None:
        self.files[f"/{repo}/resolve/main/{name}"] = data

    def ranges(self, name: str) -> list[str | None]:
        return [r for m, p, r in self.requests if m == "GET" and p.endswith("/" + name)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub_ = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                rng = self.headers.get("Range")
                hub_.requests.append((self.command, self.path, rng))
                data = hub_.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if (rng and body) else 0
                self.send_response(206 if start else 200)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(data[start : hub_.cut_at])

        return Handler


@pytest.fixture
def fake_hub(monkeypatch):
    server = FakeHub()
    server.thread.start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # 127.0.0.1 only
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    yield server
    server.server.shutdown()
    server.server.server_close()


def source(server: FakeHub, filename: str = "model.safetensors") -> HubSource:
    return HubSource(repo_id=REPO, filename=filename, endpoint=server.endpoint)


# ---- a small model and its manifest -------------------------------------------------------------
def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "blocks.0.proj_in.weight": torch.randn(8, 4, generator=g),
        "blocks.0.proj_in.bias": torch.randn(8, generator=g),
        "blocks.0.attn_mask": torch.ones(3, 3),  # deprecated buffer, dropped on conversion
        "var": torch.ones(2, 4),  # deprecated buffer
        "top.out.weight": torch.randn(4, 8, generator=g),
    }


def write_manifest(path: Path, state: dict[str, torch.Tensor]) -> Path:
    params = {k: list(v.shape) for k, v in state.items()}
    path.write_text(json.dumps({"config": {}, "parameters": params}))
    return path


def safetensors_bytes(tmp_path: Path, state: dict[str, torch.Tensor]) -> bytes:
    path = tmp_path / "src.safetensors"
    save_file({k: v for k, v in state.items() if not hub.DEPRECATED.match(k)}, str(path))
    return path.read_bytes()


def pth_bytes(tmp_path: Path, state: dict[str, torch.Tensor]) -> bytes:
    path = tmp_path / "src.pth"
    torch.save(state, path)
    return path.read_bytes()


# ---- downloads ----------------------------------------------------------------------------------
def test_download_reports_progress_and_lands_atomically(fake_hub, tmp_path):
    data = os.urandom(20_000)
    fake_hub.add("model.safetensors", data)
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "dl" / "model.safetensors"
    hub.download_file(source(fake_hub), dest, progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == data
    assert seen[0] == (0, 20_000) and seen[-1] == (20_000, 20_000) and len(seen) >= 5
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.safetensors"]  # no .part left


def test_download_resumes_a_truncated_partial_file(fake_hub, tmp_path):
    data = os.urandom(20_000)
    fake_hub.add("model.safetensors", data)
    dest = tmp_path / "model.safetensors"
    part = tmp_path / "model.safetensors.part"
    part.write_bytes(data[:12_345])  # an interrupted earlier download of this same version
    (tmp_path / "model.safetensors.part.json").write_text(
        json.dumps({"etag": hashlib.sha256(data).hexdigest()})
    )
    seen: list[int] = []
    hub.download_file(source(fake_hub), dest, progress=lambda d, t: seen.append(d))
    assert dest.read_bytes() == data
    assert fake_hub.ranges("model.safetensors") == ["bytes=12345-"]
    assert seen[0] == 12_345 and seen[-1] == 20_000


def test_partial_file_of_another_version_is_discarded(fake_hub, tmp_path):
    data = os.urandom(5_000)
    fake_hub.add("model.safetensors", data)
    (tmp_path / "model.safetensors.part").write_bytes(b"x" * 100)
    (tmp_path / "model.safetensors.part.json").write_text(json.dumps({"etag": "old"}))
    hub.download_file(source(fake_hub), tmp_path / "model.safetensors")
    assert (tmp_path / "model.safetensors").read_bytes() == data
    assert fake_hub.ranges("model.safetensors") == [None]


def test_corrupt_partial_file_fails_the_hash_check_and_is_removed(fake_hub, tmp_path):
    data = os.urandom(5_000)
    fake_hub.add("model.safetensors", data)
    (tmp_path / "model.safetensors.part").write_bytes(b"\0" * 1_000)  # right version, wrong bytes
    (tmp_path / "model.safetensors.part.json").write_text(
        json.dumps({"etag": hashlib.sha256(data).hexdigest()})
    )
    with pytest.raises(EngineError, match="corrupt"):
        hub.download_file(source(fake_hub), tmp_path / "model.safetensors")
    assert not any(tmp_path.iterdir())


def test_cancel_keeps_the_partial_file_for_a_later_resume(fake_hub, tmp_path):
    data = os.urandom(40_000)
    fake_hub.add("model.safetensors", data)
    cancel = threading.Event()

    def stop_half_way(done: int, total: int | None) -> None:
        if done >= 10_000:
            cancel.set()

    dest = tmp_path / "model.safetensors"
    seen: list[int] = []
    with pytest.raises(Cancelled):
        hub.download_file(
            source(fake_hub),
            dest,
            cancel=cancel,
            progress=lambda d, t: (seen.append(d), stop_half_way(d, t)),
        )
    kept = (tmp_path / "model.safetensors.part").stat().st_size
    assert not dest.exists() and kept == seen[-1] and 10_000 <= kept < 40_000
    hub.download_file(source(fake_hub), dest)
    assert (
        dest.read_bytes() == data and fake_hub.ranges("model.safetensors")[-1] == f"bytes={kept}-"
    )


def test_dropped_connection_is_a_clear_error_and_the_next_call_resumes(
    fake_hub, tmp_path, monkeypatch
):
    import huggingface_hub.file_download

    monkeypatch.setattr(huggingface_hub.file_download.time, "sleep", lambda s: None)  # fast retries
    data = os.urandom(20_000)
    fake_hub.add("model.safetensors", data)
    fake_hub.cut_at = 6_000
    dest = tmp_path / "model.safetensors"
    with pytest.raises(EngineError, match="resumes from there next time") as error:
        hub.download_file(source(fake_hub), dest)
    kept = (tmp_path / "model.safetensors.part").stat().st_size  # whole chunks only
    assert 0 < kept <= 6_000 and f"stopped at {kept} bytes" in str(error.value)
    fake_hub.cut_at = None
    hub.download_file(source(fake_hub), dest)
    assert (
        dest.read_bytes() == data and fake_hub.ranges("model.safetensors")[-1] == f"bytes={kept}-"
    )


def test_disk_space_is_checked_before_downloading(fake_hub, tmp_path, monkeypatch):
    fake_hub.add("model.pth", os.urandom(3_000))
    monkeypatch.setattr(hub, "free_bytes", lambda path: 4_000)
    with pytest.raises(EngineError, match=r"need .*\(6000 bytes\).*\(4000 bytes\) free"):
        hub.download_file(source(fake_hub, "model.pth"), tmp_path / "model.pth", reserve_copy=True)
    assert fake_hub.ranges("model.pth") == [] and not any(tmp_path.iterdir())
    hub.download_file(source(fake_hub, "model.pth"), tmp_path / "model.pth")  # 3000 <= 4000


def test_offline_unreachable_and_missing_files_are_clear_errors(fake_hub, tmp_path, monkeypatch):
    with pytest.raises(
        EngineError, match="file not found on the Hub: apple/starflow@main/nope.pth"
    ):
        hub.download_file(source(fake_hub, "nope.pth"), tmp_path / "nope.pth")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(EngineError, match="cannot reach the Hugging Face Hub"):
        hub.download_file(HubSource(endpoint=closed), tmp_path / "x.pth")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EngineError, match="offline mode is on"):
        ModelManager(tmp_path).fetch(accept_license=True)
    assert not any(tmp_path.iterdir())


# ---- the licence --------------------------------------------------------------------------------
def test_licence_is_fetched_once_and_must_be_accepted(fake_hub, tmp_path, monkeypatch):
    fake_hub.add("LICENSE", LICENSE.encode())
    manager = ModelManager(tmp_path, source(fake_hub))
    assert manager.license_text() == LICENSE
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert manager.license_text() == LICENSE  # read from disk the second time
    with pytest.raises(EngineError, match="licence must be accepted"):
        manager.fetch(accept_license=False)


def test_missing_licence_points_to_its_web_page(fake_hub, tmp_path, monkeypatch):
    text = ModelManager(tmp_path, source(fake_hub)).license_text()  # something to read and accept
    assert re.match(
        r"apple/starflow has no licence file; its model card has none.*LICENSE_MODEL", text
    )
    fake_hub.add("README.md", b"---\nlicense: other\n---\n# card")
    manager = ModelManager(tmp_path / "again", source(fake_hub))
    assert "its model card names the licence 'other'" in manager.license_text()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert "'other'" in manager.license_text()  # read from disk offline


# ---- the manager end to end ---------------------------------------------------------------------
def test_fetch_downloads_converts_once_and_then_works_offline(fake_hub, tmp_path, monkeypatch):
    state = small_state()
    fake_hub.add("model.pth", pth_bytes(tmp_path, state))
    manifest = write_manifest(tmp_path / "manifest.json", state)
    manager = ModelManager(tmp_path / "models", source(fake_hub, "model.pth"), manifest)
    path = manager.fetch(accept_license=True)
    assert (
        path == manager.download_path.with_suffix(".safetensors") and manager.download_path.exists()
    )
    loaded = load_file(str(path))
    assert set(loaded) == {"blocks.0.proj_in.weight", "blocks.0.proj_in.bias", "top.out.weight"}
    for name, tensor in loaded.items():
        assert torch.equal(tensor, state[name])
    stamp = path.stat().st_mtime_ns
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert manager.fetch(accept_license=True) == path and path.stat().st_mtime_ns == stamp


def test_fetch_rejects_a_downloaded_file_of_the_wrong_model(fake_hub, tmp_path):
    state = small_state()
    fake_hub.add("model.safetensors", safetensors_bytes(tmp_path, state))
    wrong = dict(state, **{"top.out.weight": torch.zeros(4, 9)})
    manager = ModelManager(
        tmp_path / "m", source(fake_hub), write_manifest(tmp_path / "m.json", wrong)
    )
    with pytest.raises(EngineError, match=r"top.out.weight: file \[4, 8\] vs expected \[4, 9\]"):
        manager.fetch(accept_license=True)


# ---- conversion ---------------------------------------------------------------------------------
def test_conversion_round_trip_is_cached_and_redone_when_stale(tmp_path):
    state = small_state()
    pth = tmp_path / "model.pth"
    torch.save({"model": state}, pth)  # a training checkpoint wrapping its state dict
    manifest = load_manifest(write_manifest(tmp_path / "manifest.json", state))
    out = hub.convert_once(pth, manifest)
    assert out == tmp_path / "model.safetensors"
    loaded = load_file(str(out))
    assert all(torch.equal(loaded[k], state[k]) for k in loaded) and "var" not in loaded
    stamp = out.stat().st_mtime_ns
    assert hub.convert_once(pth, manifest).stat().st_mtime_ns == stamp  # reused
    os.utime(out, ns=(0, 0))  # older than the .pth: converted again
    assert hub.convert_once(pth, manifest).stat().st_mtime_ns > 0


def test_conversion_checks_disk_space(tmp_path, monkeypatch):
    pth = tmp_path / "model.pth"
    torch.save(small_state(), pth)
    monkeypatch.setattr(hub, "free_bytes", lambda path: 10)
    with pytest.raises(EngineError, match="not enough disk space"):
        hub.convert_once(pth, load_manifest(write_manifest(tmp_path / "m.json", small_state())))


# ---- manifest checks ----------------------------------------------------------------------------
def test_manifest_report_names_missing_unexpected_and_misshaped_tensors(tmp_path):
    state = small_state()
    manifest = load_manifest(write_manifest(tmp_path / "m.json", state))
    ok = compare_shapes(
        {k: tuple(v.shape) for k, v in state.items() if not hub.DEPRECATED.match(k)}, manifest
    )
    assert ok.ok and ok.absent_deprecated == ("blocks.0.attn_mask", "var")
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    del shapes["top.out.weight"]
    shapes["extra.weight"] = (1,)
    shapes["blocks.0.proj_in.bias"] = (9,)
    report = compare_shapes(shapes, manifest)
    assert report.missing == ("top.out.weight",) and report.unexpected == ("extra.weight",)
    assert report.mismatched == (("blocks.0.proj_in.bias", (9,), (8,)),)
    text = report.describe()
    assert (
        "missing tensors (1): top.out.weight" in text
        and "unexpected tensors (1): extra.weight" in text
    )
    assert "blocks.0.proj_in.bias: file [9] vs expected [8]" in text


def test_verify_reads_safetensors_and_pth_and_rejects_bad_files(tmp_path):
    state = small_state()
    manifest = load_manifest(write_manifest(tmp_path / "m.json", state))
    good = tmp_path / "good.safetensors"
    good.write_bytes(safetensors_bytes(tmp_path, state))
    assert verify_checkpoint(good, manifest).ok
    pth = tmp_path / "good.pth"
    pth.write_bytes(pth_bytes(tmp_path, state))
    assert verify_checkpoint(pth, manifest).ok
    missing = dict(state)
    del missing["top.out.weight"]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(safetensors_bytes(tmp_path, missing))
    with pytest.raises(EngineError, match="missing tensors \\(1\\): top.out.weight"):
        verify_checkpoint(bad, manifest)
    for name, data in (
        ("cut.safetensors", good.read_bytes()[:-10]),
        ("cut.pth", pth.read_bytes()[:-300]),
        ("junk.safetensors", b"\xff" * 64),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(EngineError, match="truncated|cannot read|not a safetensors"):
            verify_checkpoint(tmp_path / name, manifest)
    with pytest.raises(EngineError, match="not found"):
        verify_checkpoint(tmp_path / "absent.safetensors", manifest)
    with pytest.raises(EngineError, match="unsupported model file type"):
        ModelManager(tmp_path).use_local(tmp_path / "m.json")


def test_shipped_manifest_matches_the_engine_model_and_the_reference_copy():
    shipped = Path(hub.MANIFEST_PATH)
    reference = REPO_ROOT.parent / "shared" / "reference" / shipped.name
    if reference.exists():
        assert json.loads(shipped.read_text()) == json.loads(reference.read_text())
    manifest = load_manifest()
    assert len(manifest) == 558
    cfg = FlowConfig.from_dict(json.loads(shipped.read_text())["config"])
    listing = {
        k: v for k, v in expected_manifest(cfg).items() if not hub.DEPRECATED.match(k)
    }  # meta only
    report = compare_shapes(listing, manifest)
    assert report.ok and len(report.absent_deprecated) == 9
    listing["blocks.5.proj_in.weight"] = (1, 1)
    assert "blocks.5.proj_in.weight: file [1, 1]" in compare_shapes(listing, manifest).describe()


def test_repo_ids_with_dots_and_revisions_are_hub_ids_and_file_names_are_not(tmp_path, monkeypatch):
    from engine.starflow_v import loader

    for value in (
        "apple/starflow",
        "apple/starflow@v1.0",
        "Wan-AI/Wan2.2-TI2V-5B",
        "a/b@refs/pr/3",
    ):
        assert hub.is_repo_id(value), value
    local = tmp_path / "owner" / "name.v2"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for value in ("runs/model.pth", "x/clip.MP4", "a/b.safetensors@main", "owner/name.v2", "a/b/c"):
        assert not hub.is_repo_id(value), value
    seen = []
    monkeypatch.setattr(ModelManager, "fetch", lambda self, **kw: seen.append(self.source))
    loader.resolve_checkpoint("apple/starflow@v1.0", models_dir=tmp_path / "models")
    assert (seen[0].repo_id, seen[0].revision) == ("apple/starflow", "v1.0")
