"""Shared test set-up: headless Qt, no network, fixed seeds."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_qsettings(tmp_path):
    """No test reads or writes the user's preferences or app data: QSettings default to INI files
    under tmp_path and QStandardPaths to Qt's test locations."""
    try:
        from PySide6.QtCore import QSettings, QStandardPaths
    except ImportError:  # engine-only environments
        yield
        return
    QStandardPaths.setTestModeEnabled(True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings")
    )
    yield


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One torch CPU thread: OpenMP threads fighting for shared cores make tiny models slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
