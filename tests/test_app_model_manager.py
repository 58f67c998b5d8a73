"""The editor's model manager against a fake Hub on 127.0.0.1 (no network): licence shown and
accepted, download with progress, .pth converted once, manifest check, wrong files and an
unreachable Hub refused with a clear message while the demo model stays in use."""

from __future__ import annotations

import socket

import pytest
import torch
from PySide6.QtCore import Qt

from app_utils import close_editor, open_editor
from test_large_hub import LICENSE, REPO, pth_bytes, small_state, write_manifest
from test_large_hub import fake_hub as hub_fixture  # noqa: F401 - the fake Hub fixture


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
    qtbot.waitUntil(lambda: dialog.license_text.toPlainText() == LICENSE, timeout=10_000)
    dialog.accept_box.setChecked(True)
    progress = []
    dialog.worker.progress.connect(lambda done, total: progress.append((done, total)))
    with qtbot.waitSignal(dialog.chosen, timeout=30_000) as chosen:
        click(qtbot, dialog.download)
    path = chosen.args[0]
    assert path.endswith("model.safetensors") and dialog.bar.value() == dialog.bar.maximum()
    assert progress and progress[-1][0] == progress[-1][1]
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
