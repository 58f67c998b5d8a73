"""Helpers for the editor tests: isolated settings, scripted dialogs, a shared demo pipeline and
a fault-injecting wrapper around it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from app.dialogs import Dialogs
from app.settings import Settings
from engine.api import FrameEvent, GenerateRequest

FAULT_SEED = 666
_PIPELINES: dict[tuple[str, str, str], object] = {}


def demo_loader(model: str | None, device: str, precision: str, **options):
    """The real loader, with the built-in demo model loaded once per test session."""
    from engine.registry import load_pipeline

    if model:
        return load_pipeline(model, device, precision, **options)
    key = ("", device, precision)
    if key not in _PIPELINES:
        _PIPELINES[key] = load_pipeline(None, device, precision)
    return _PIPELINES[key]


class FaultyPipeline:
    """The real demo pipeline, except that a request with seed FAULT_SEED raises `error` after
    `after` frames (an engine bug or running out of GPU memory mid-job)."""

    def __init__(self, inner, error: BaseException, after: int = 2) -> None:
        self.inner, self.error, self.after = inner, error, after
        self.info = inner.info

    def generate(
        self, request: GenerateRequest, cancel: threading.Event | None = None
    ) -> Iterator[FrameEvent]:
        made = 0
        for event in self.inner.generate(request, cancel):
            if request.seed == FAULT_SEED and made >= self.after:
                raise self.error
            made += len(event.frames)
            yield event


class ScriptedDialogs(Dialogs):
    """Answers every question at once from `answers` (no modal loop) and records the questions."""

    def __init__(self, **answers) -> None:
        super().__init__()
        self.answers = answers
        self.asked: list[str] = []
        self.texts: list[str] = []  # the texts of `ask`'s questions

    def _answer(self, kind: str, *_args):
        self.asked.append(kind)
        return self.answers.get(kind)

    def open_image(self, start: str) -> str | None:
        return self._answer("open_image")

    def open_video(self, start: str) -> str | None:
        return self._answer("open_video")

    def open_model(self, start: str) -> str | None:
        return self._answer("open_model")

    def open_project(self, start: str) -> str | None:
        return self._answer("open_project")

    def save_project(self, start: str) -> str | None:
        return self._answer("save_project")

    def export_video(self, start: str) -> str | None:
        return self._answer("export_video")

    def export_frame(self, start: str) -> str | None:
        return self._answer("export_frame")

    def clip_name(self, current: str) -> str | None:
        return self._answer("clip_name")

    def ask(self, title: str, text: str) -> bool:
        self.asked.append(title)
        self.texts.append(text)
        return bool(self.answers.get("ask", False))

    def confirm_close(self, text: str) -> str:
        self.asked.append("confirm_close")
        return self.answers.get("confirm_close", "discard")


def isolated_settings(folder: Path) -> Settings:
    """Preferences in an INI file under `folder`; recovery autosaves there too."""
    from PySide6.QtCore import QSettings

    s = Settings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat))
    s.recovery_dir = folder / "recovery"
    s.autosave_minutes = 60.0  # the timer must not fire during a test; autosave is called
    s.device = "cpu"
    return s


def no_loader(*_args, **_kwargs):
    raise AssertionError("these tests load no model")


def engine_free_window(qtbot, folder: Path, size: tuple[int, int] | None = None, **answers):
    """The shown main window over a studio that never loads a model (jobs are driven by hand);
    `answers` script its dialogs."""
    from app.main_window import MainWindow
    from app.studio import Studio

    studio = Studio(isolated_settings(folder), loader=no_loader, dialogs=ScriptedDialogs(**answers))
    window = MainWindow(studio)
    qtbot.addWidget(window)
    if size is not None:
        window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    return window


def open_editor(
    qtbot, folder: Path, loader=demo_loader, project: Path | None = None, **answers
) -> SimpleNamespace:
    """The real main window over a Studio, with the model loaded (and `project` given to start,
    as `starflow-studio PROJECT` does)."""
    from app.main_window import MainWindow
    from app.studio import Studio

    torch.set_num_threads(1)
    studio = Studio(isolated_settings(folder), loader=loader, dialogs=ScriptedDialogs(**answers))
    window = MainWindow(studio)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(studio.model_loaded, timeout=60_000):
        studio.start(project)
    return SimpleNamespace(studio=studio, window=window, folder=folder)


def close_editor(ed: SimpleNamespace, clean: bool = True) -> None:
    ed.window.shutdown(clean)
    assert not ed.studio.engine.thread.isRunning()
    assert not ed.studio.autosave_timer.isActive()
    assert not ed.window.preview.play_timer.isActive()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def shown_frame(canvas) -> np.ndarray:
    """What the preview canvas paints, read back from its pixels: the image rectangle of a grab,
    area-scaled to the frame size (H, W, 3) uint8 RGB."""
    import cv2
    from PySide6.QtGui import QImage

    image = canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), -1)
    pixels = pixels[:, : 3 * image.width()].reshape(image.height(), image.width(), 3)
    ratio = image.width() / canvas.width()  # device pixels per widget pixel
    r = canvas.target_rect()
    top, left = round(r.top() * ratio), round(r.left() * ratio)
    bottom, right = round(r.bottom() * ratio), round(r.right() * ratio)
    size = (canvas.image.width(), canvas.image.height())
    return cv2.resize(pixels[top:bottom, left:right], size, interpolation=cv2.INTER_AREA)
