"""`python -m engine models` and the 7B's --text-encoder / --vae on the command line, against the
fake Hub on 127.0.0.1 (nothing leaves this machine): list, download with licence and progress,
verify, and one-line errors with exit status 2 before anything loads."""

from __future__ import annotations

import logging
import re
import sys

import huggingface_hub.constants
import pytest

from engine import cli
from engine.starflow_v import loader, parts
from test_large_hub import fake_hub  # noqa: F401 - the fake Hub fixture
from test_large_parts import WAN, tiny_vae_repo

pytest.importorskip("diffusers")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_list_download_and_verify_the_vae(fake_hub, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="engine.cli")
    tiny_vae_repo(tmp_path, fake_hub)
    common = ["--models-dir", str(tmp_path / "models"), "--endpoint", fake_hub.endpoint]
    code, out, _ = run(capsys, "models", "list", "vae", *common)
    assert code == 0 and out.startswith("vae") and "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in out
    assert re.search(r"not downloaded: 1\.17 MB of 1\.17 MB to fetch into .*models", out)
    code, _, _ = run(capsys, "models", "download", "vae", *common)
    assert code == 2 and "add --accept-license to download vae" in caplog.text
    assert "Apache License 2.0 (test copy)" in caplog.text  # the licence is shown first
    caplog.clear()
    code, _, _ = run(capsys, "models", "download", "vae", "--accept-license", *common)
    assert code == 0 and "vae: ready at" in caplog.text and " MB of 1.17 MB" in caplog.text
    code, out, _ = run(capsys, "models", "list", "vae", *common)
    assert "downloaded: " in out and str(tmp_path / "models") in out
    code, _, _ = run(capsys, "models", "verify", "vae", *common)
    assert code == 0 and "checked" in caplog.text


def test_generate_names_missing_parts_offline_before_loading(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(parts, "_in_hf_cache", lambda *a: False)
    loaded = []
    monkeypatch.setattr(loader, "_check_header", lambda *a: None)  # the file stands for one
    monkeypatch.setattr(loader, "_local_checkpoint", lambda *a: loaded.append(a))
    ckpt = tmp_path / "flow.safetensors"
    ckpt.write_bytes(b"")
    argv = ["generate", "--model", str(ckpt), "--prompt", "x", "--out", str(tmp_path / "o.mp4")]
    code = cli.main([*argv, "--models-dir", str(tmp_path / "m")])
    assert code == 2 and not loaded
    assert (
        "T5 text encoder (google/flan-t5-xl) is not downloaded and the Hub is offline"
        in caplog.text
    )
    assert f"Wan2.2 VAE ({WAN}) is not downloaded" in caplog.text
    caplog.clear()
    code = cli.main([*argv, "--vae", str(tmp_path / "nope" / "Wan2.2_VAE.pth")])
    assert code == 2 and "Wan2.2 VAE not found:" in caplog.text and not loaded


def test_generate_passes_local_parts_into_the_loader(tmp_path, monkeypatch):
    seen = {}

    def locate(key, value, models_dir, **_k):
        seen[key] = (value, models_dir)
        return f"/local/{key}/{value}"

    monkeypatch.setattr(parts, "locate", locate)
    monkeypatch.setattr(loader, "_check_header", lambda *a: None)
    monkeypatch.setattr(loader, "_local_checkpoint", lambda *a: sys.exit(0))
    ckpt = tmp_path / "flow.safetensors"
    ckpt.write_bytes(b"")
    with pytest.raises(SystemExit):
        cli.main(
            ["generate", "--model", str(ckpt), "--prompt", "x", "--out", "o.mp4"]
            + ["--text-encoder", "t5dir", "--vae", "vae.pth", "--models-dir", str(tmp_path)]
        )
    assert seen == {"text-encoder": ("t5dir", tmp_path), "vae": ("vae.pth", tmp_path)}


def test_a_missing_package_stops_generate_with_the_install_command(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    ckpt = tmp_path / "flow.safetensors"
    ckpt.write_bytes(b"")
    code = cli.main(["generate", "--model", str(ckpt), "--prompt", "x", "--out", "o.mp4"])
    assert code == 2 and "the 7B needs diffusers: pip install -e '.[large]'" in caplog.text


def test_without_flags_the_parts_are_the_checkpoint_configs(tmp_path, monkeypatch):
    from types import SimpleNamespace

    asked = []
    monkeypatch.setattr(
        loader,
        "config_for",
        lambda model, given: SimpleNamespace(flow=None, text_encoder="their/t5", vae="their/vae"),
    )
    monkeypatch.setattr(parts, "locate", lambda key, value, *a, **k: asked.append(value) or value)
    monkeypatch.setattr(loader, "_check_header", lambda *a: None)
    monkeypatch.setattr(loader, "_local_checkpoint", lambda *a: sys.exit(0))
    ckpt = tmp_path / "flow.safetensors"
    ckpt.write_bytes(b"")
    with pytest.raises(SystemExit):
        cli.main(["generate", "--model", str(ckpt), "--prompt", "x", "--out", "o.mp4"])
    assert asked == ["their/t5", "their/vae"]


def test_memory_flags_reach_the_loader(tmp_path, monkeypatch):
    """--offload --window 3 --vae-on-cpu: the 16 GB preset from the command line."""
    seen = {}
    monkeypatch.setattr(
        "engine.registry.load_pipeline", lambda *a, **k: seen.update(k) or sys.exit(0)
    )
    argv = ["generate", "--model", str(tmp_path / "f.safetensors"), "--prompt", "x"]
    with pytest.raises(SystemExit):
        cli.main([*argv, "--out", "o.mp4", "--offload", "--window", "3", "--vae-on-cpu"])
    assert (seen["offload"], seen["window"], seen["vae_on_cpu"]) == (True, 3, True)
