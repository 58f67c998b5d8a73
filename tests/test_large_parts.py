"""The 7B's companion parts through the manager, against the fake Hub on 127.0.0.1: the T5 encoder
(only the shards holding encoder tensors), the Wan2.2 VAE folder, licences, progress, cancel,
resume, the disk check, and `locate` before loading (offline: a clear message). The
`large` extra's check. Nothing leaves this machine."""

from __future__ import annotations

import sys
import threading

import huggingface_hub.constants
import pytest
import torch

from engine.api import Cancelled, EngineError
from engine.starflow_v import deps, hub, parts
from engine.starflow_v.parts import TEXT_ENCODER, VAE, PartManager, locate, locate_parts
from test_large_hub import fake_hub  # noqa: F401 - the fake Hub fixture

transformers = pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

T5 = "google/flan-t5-xl"
WAN = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"


# ---- the large extra ----------------------------------------------------------------------------
@pytest.mark.parametrize("blocked", ["transformers", "diffusers", "sentencepiece"])
def test_a_missing_package_is_one_line_naming_the_install_command(monkeypatch, blocked):
    deps.require_large()  # all installed here
    monkeypatch.setitem(sys.modules, blocked, None)  # `import blocked` now fails
    with pytest.raises(EngineError) as error:
        deps.require_large()
    assert str(error.value) == f"the 7B needs {blocked}: pip install -e '.[large]'"


# ---- a tiny T5 repo ------------------------------------------------------------------------------
def tiny_t5_repo(tmp_path, server) -> dict[str, bytes]:
    """A tiny T5 with encoder and decoder saved in small shards, served as google/flan-t5-xl."""
    from test_large_text import tiny_config, tiny_tokenizer

    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(tiny_config())
    folder = tmp_path / "t5-src"
    model.save_pretrained(folder, max_shard_size="5KB")
    tiny_tokenizer().save_pretrained(folder)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    for name, data in files.items():
        server.add(name, data, repo=T5)
    server.add("README.md", b"---\nlicense: apache-2.0\n---\n# FLAN-T5", repo=T5)
    return files


def t5_manager(tmp_path, server, **kw) -> PartManager:
    check = lambda p: parts.check_text_encoder(p, d_model=16)  # noqa: E731 - the tiny width
    return PartManager(
        tmp_path / "models", TEXT_ENCODER, endpoint=server.endpoint, check=check, **kw
    )


def shard_names(files: dict[str, bytes]) -> list[str]:
    return sorted(n for n in files if n.startswith("model-"))


def test_text_encoder_fetches_only_encoder_shards_with_progress_and_loads(fake_hub, tmp_path):
    files = tiny_t5_repo(tmp_path, fake_hub)
    manager = t5_manager(tmp_path, fake_hub)
    import json

    index = json.loads(files[parts.INDEX])["weight_map"]
    needed = sorted({f for k, f in index.items() if k.startswith(("shared.", "encoder."))})
    skipped = sorted(set(shard_names(files)) - set(needed))
    assert needed and skipped  # the tiny repo has decoder-only shards, as flan-t5-xl
    missing, whole = manager.size()
    assert (
        missing
        == whole
        == sum(len(files[n]) for n in needed)
        + sum(
            len(files[n])
            for n in ("config.json", "tokenizer.json", "tokenizer_config.json")
            if n in files
        )
        + sum(len(files[n]) for n in ("special_tokens_map.json",) if n in files)
    )
    seen: list[tuple[int, int | None]] = []
    folder = manager.fetch(accept_license=True, progress=lambda d, t: seen.append((d, t)))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (whole, whole)
    assert all(fake_hub.ranges(n) == [] for n in skipped)  # decoder-only shards never fetched
    from engine.starflow_v.text import T5TextEncoder

    encoder = T5TextEncoder.from_pretrained(str(folder), local_files_only=True)
    torch.manual_seed(0)
    full = transformers.T5ForConditionalGeneration(
        transformers.T5Config(**encoder.model.config.to_dict())
    )
    full.load_state_dict(
        transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "t5-src").state_dict()
    )
    for name, tensor in encoder.model.state_dict().items():
        assert torch.equal(tensor, full.state_dict()[name]), name
    assert manager.local() == folder and manager.size() == (0, whole)


def test_text_encoder_cancel_resume_and_disk_check(fake_hub, tmp_path, monkeypatch):
    files = tiny_t5_repo(tmp_path, fake_hub)
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    manager = t5_manager(tmp_path, fake_hub)
    missing, _ = manager.size()
    monkeypatch.setattr(hub, "free_bytes", lambda path: missing - 1)
    with pytest.raises(EngineError, match="not enough disk space"):
        manager.fetch(accept_license=True)
    assert all(fake_hub.ranges(n) == [] for n in shard_names(files))
    monkeypatch.undo()
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        manager.fetch(
            accept_license=True,
            cancel=cancel,
            progress=lambda d, t: cancel.set() if d > t // 2 else None,
        )
    assert manager.local() is None
    assert any(p.name.endswith(".part") for p in manager.folder.iterdir())
    manager.fetch(accept_license=True)
    resumed = [r for n in shard_names(files) for r in fake_hub.ranges(n) if r]
    assert resumed and all(r.startswith("bytes=") for r in resumed)  # a shard went on, not again


def test_repo_without_licence_file_gets_its_card_licence(fake_hub, tmp_path, monkeypatch):
    tiny_t5_repo(tmp_path, fake_hub)
    manager = t5_manager(tmp_path, fake_hub)
    text = manager.license_text()
    assert text.startswith(
        "google/flan-t5-xl has no licence file; its model card names the licence 'apache-2.0'"
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert manager.license_text() == text
    with pytest.raises(EngineError, match="licence must be accepted"):
        manager.fetch(accept_license=False)


def test_text_encoder_folder_checks(tmp_path):
    with pytest.raises(EngineError, match="text encoder not found"):
        parts.check_text_encoder(tmp_path / "nope")
    (tmp_path / "config.json").write_text('{"model_type": "t5", "d_model": 16}')
    with pytest.raises(EngineError, match="width 2048"):
        parts.check_text_encoder(tmp_path, d_model=2048)
    with pytest.raises(EngineError, match="no tokenizer"):
        parts.check_text_encoder(tmp_path, d_model=16)
    (tmp_path / "spiece.model").write_bytes(b"x")
    with pytest.raises(EngineError, match="no weights"):
        parts.check_text_encoder(tmp_path, d_model=16)


# ---- the VAE folder ------------------------------------------------------------------------------
def tiny_vae_repo(tmp_path, server) -> dict[str, bytes]:
    from test_large_vae import TINY

    torch.manual_seed(0)
    diffusers.AutoencoderKLWan(**TINY).save_pretrained(tmp_path / "vae-src")
    files = {p.name: p.read_bytes() for p in (tmp_path / "vae-src").iterdir()}
    for name, data in files.items():
        server.add(f"vae/{name}", data, repo=WAN)
    server.add("LICENSE.txt", b"Apache License 2.0 (test copy)\n", repo=WAN)
    return files


def test_vae_folder_downloads_checks_and_loads(fake_hub, tmp_path):
    files = tiny_vae_repo(tmp_path, fake_hub)
    manager = PartManager(tmp_path / "models", VAE, endpoint=fake_hub.endpoint)
    assert manager.license_text().startswith("Apache License 2.0")
    assert manager.size()[0] == sum(len(d) for d in files.values())
    folder = manager.fetch(accept_license=True)
    assert folder == manager.folder / "vae"
    from engine.starflow_v.vae import WanCodec

    codec = WanCodec.from_pretrained(str(folder), subfolder=None, local_files_only=True)
    assert codec.channels == 48
    # a second fetch is offline-safe: the marker says the folder is complete and checked
    assert manager.fetch(accept_license=True) == folder


# ---- before loading -----------------------------------------------------------------------------
def test_locate_offline_with_parts_missing_names_them_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(parts, "_in_hf_cache", lambda *a: False)
    with pytest.raises(EngineError) as error:
        locate_parts(T5, WAN, tmp_path, download=True)
    text = str(error.value)
    assert "T5 text encoder (google/flan-t5-xl) is not downloaded and the Hub is offline" in text
    assert "python -m engine models download text-encoder" in text
    assert "python -m engine models download vae" in text and "--vae FOLDER" in text
    with pytest.raises(EngineError, match="Wan2.2 VAE not found: /no/such.pth"):
        locate("vae", "/no/such.pth", tmp_path)
    assert not any(tmp_path.iterdir())  # nothing downloaded, nothing written


def test_locate_takes_local_folders_and_earlier_downloads(fake_hub, tmp_path, monkeypatch):
    tiny_vae_repo(tmp_path, fake_hub)
    manager = PartManager(tmp_path / "models", VAE, endpoint=fake_hub.endpoint)
    folder = manager.fetch(accept_license=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert locate("vae", WAN, tmp_path / "models") == str(folder)
    assert locate("vae", str(tmp_path / "vae-src"), tmp_path / "models") == str(
        tmp_path / "vae-src"
    )
    monkeypatch.setattr(parts, "_in_hf_cache", lambda *a: True)  # from_pretrained's own cache
    assert locate("vae", "someone/else-vae", tmp_path / "models") == "someone/else-vae"


def test_an_earlier_download_with_files_gone_is_refused_before_loading(fake_hub, tmp_path):
    tiny_vae_repo(tmp_path, fake_hub)
    folder = PartManager(tmp_path / "models", VAE, endpoint=fake_hub.endpoint).fetch(
        accept_license=True
    )
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(EngineError, match="has no diffusion_pytorch_model.safetensors"):
        locate("vae", WAN, tmp_path / "models")
