"""The editor's model manager against a fake Hub on 127.0.0.1 (no network): licence shown and
accepted, download with progress, .pth converted once, manifest check, wrong files and an
unreachable Hub refused with a clear message while the demo model stays in use; the T5 encoder
and the VAE as parts of their own (size, a card licence, cancel and resume, a local folder)."""

from __future__ import annotations

import socket
import threading

import pytest
import torch
from PySide6.QtCore import Qt

from app_utils import close_editor, open_editor
from test_large_hub import LICENSE, REPO, pth_bytes, small_state, write_manifest
from test_large_hub import fake_hub as hub_fixture  # noqa: F401 - the fake Hub fixture
from test_large_parts import tiny_t5_repo, tiny_vae_repo


@pytest.fixture
def editor(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    yield ed
    close_editor(ed)
    assert not ed.window.model_manager or not ed.window.model_manager.thread.isRunning()


def manager_for(ed, qtbot, endpoint: str, filename: str, manifest):
    dialog = ed.window.open_model_manager(manifest)
    dialog.repo.setText(REPO)
    dialog.filename.setText(filename)
    dialog.endpoint.setText(endpoint)
    dialog.folder.setText(str(ed.folder / "models"))
    return dialog


def click(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_download_needs_the_licence_then_converts_checks_and_loads(
    qtbot, editor, hub_fixture, tmp_path
):
    fake_hub = hub_fixture
    state = small_state()
    fake_hub.add("LICENSE", LICENSE.encode())
    fake_hub.add("model.pth", pth_bytes(tmp_path, state))
    manifest = write_manifest(tmp_path / "manifest.json", state)
    dialog = manager_for(editor, qtbot, fake_hub.endpoint, "model.pth", manifest)

    assert not dialog.download.isEnabled() and not dialog.accept_box.isEnabled()
    click(qtbot, dialog.show_license)
    qtbot.waitUntil(
        lambda: dialog.license_text.toPlainText() == LICENSE and not dialog.busy, timeout=10_000
    )
    assert dialog.panels["flow"].size.text() == "3 KiB"  # the checkpoint's size, shown
    dialog.accept_box.setChecked(True)
    progress = []
    dialog.worker.progress.connect(lambda key, done, total: progress.append((key, done, total)))
    with qtbot.waitSignal(dialog.chosen, timeout=30_000) as chosen:
        click(qtbot, dialog.download)
    path = chosen.args[0]
    assert path.endswith("model.safetensors") and dialog.bar.value() == dialog.bar.maximum()
    assert progress and progress[-1][0] == "flow" and progress[-1][1] == progress[-1][2]
    assert "matches the 7B manifest" in dialog.status.text()
    # these small tensors are not a loadable STARFlow-V: the editor says so and keeps the demo
    s = editor.studio
    qtbot.waitUntil(lambda: s.engine_ready and bool(s.messages.errors()), timeout=30_000)
    assert "Model not loaded" in s.messages.errors()[-1].text
    assert s.info.name.startswith("Shapes") and s.settings.model == ""
    # changing the repository asks for the licence again
    dialog.repo.setText("someone/else")
    assert not dialog.accept_box.isChecked() and not dialog.download.isEnabled()


def test_wrong_local_file_and_unreachable_hub_are_clear_errors(qtbot, editor, tmp_path):
    state = small_state()
    manifest = write_manifest(tmp_path / "manifest.json", state)
    wrong = tmp_path / "other.pth"
    torch.save({"something.else": torch.zeros(3)}, wrong)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    dialog = manager_for(editor, qtbot, closed, "model.pth", manifest)

    dialog.local_path.setText(str(wrong))
    click(qtbot, dialog.use_local)
    qtbot.waitUntil(lambda: "stays in use" in dialog.status.text(), timeout=10_000)
    assert "something.else" in dialog.status.text()

    click(qtbot, dialog.show_license)
    qtbot.waitUntil(lambda: "cannot" in dialog.status.text().lower(), timeout=30_000)
    assert not dialog.accept_box.isEnabled() and not dialog.download.isEnabled()
    s = editor.studio
    assert s.engine_ready and s.info.name.startswith("Shapes")


def test_vae_part_shows_size_and_licence_downloads_cancels_resumes(
    qtbot, editor, hub_fixture, tmp_path, monkeypatch
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    fake_hub = hub_fixture
    files = tiny_vae_repo(tmp_path, fake_hub)
    dialog = manager_for(editor, qtbot, fake_hub.endpoint, "model.pth", tmp_path / "m.json")
    panel = dialog.panels["vae"]
    assert not panel.download.isEnabled()
    click(qtbot, panel.show_license)
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert panel.license_text.toPlainText().startswith("Apache License 2.0")
    assert panel.size.text() == f"{sum(map(len, files.values())) / 2**20:.1f} MiB"
    panel.accept_box.setChecked(True)
    # cancel half way through: the partial file stays, the next download resumes it
    stop = threading.Event()
    dialog.worker.progress.connect(
        lambda key, done, total: (
            dialog.cancel_download() if done > total // 2 and not stop.is_set() else None
        )
    )
    click(qtbot, panel.download)
    qtbot.waitUntil(lambda: "cancelled" in dialog.status.text(), timeout=30_000)
    assert not dialog.busy and panel.download.isEnabled()
    stop.set()
    with qtbot.waitSignal(dialog.part_ready, timeout=30_000) as ready:
        click(qtbot, panel.download)
    key, path = ready.args
    assert key == "vae" and path.endswith("vae") and panel.local_path.text() == path
    assert any(r for r in fake_hub.ranges("diffusion_pytorch_model.safetensors") if r)  # resumed
    assert editor.studio.settings.q.value("parts/vae") == path
    assert editor.studio.info.name.startswith("Shapes")  # the demo model stays loaded


def test_text_encoder_without_licence_file_can_be_downloaded_or_picked_on_disk(
    qtbot, editor, hub_fixture, tmp_path, monkeypatch
):
    from engine.starflow_v import parts

    monkeypatch.setitem(parts.CHECKS, "text-encoder", lambda p: parts.check_text_encoder(p, 16))
    tiny_t5_repo(tmp_path, hub_fixture)
    dialog = manager_for(editor, qtbot, hub_fixture.endpoint, "model.pth", tmp_path / "m.json")
    panel = dialog.panels["text-encoder"]
    click(qtbot, panel.show_license)
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert (
        "no licence file; its model card names the licence 'apache-2.0'"
        in panel.license_text.toPlainText()
    )
    assert panel.accept_box.isEnabled() and panel.size.text().endswith("KiB")
    panel.accept_box.setChecked(True)
    assert panel.download.isEnabled()  # no licence file does not block the download
    with qtbot.waitSignal(dialog.part_ready, timeout=30_000) as ready:
        click(qtbot, panel.download)
    assert ready.args[0] == "text-encoder"
    # a folder on disk instead: checked, and a wrong one refused with the reason
    panel.local_path.setText(str(tmp_path / "t5-src"))
    with qtbot.waitSignal(dialog.part_ready, timeout=30_000) as ready:
        click(qtbot, panel.use_local)
    assert ready.args == ["text-encoder", str(tmp_path / "t5-src")]
    panel.local_path.setText(str(tmp_path))
    click(qtbot, panel.use_local)
    qtbot.waitUntil(lambda: "has no config.json" in dialog.status.text(), timeout=10_000)
