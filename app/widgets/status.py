"""Status bar: device, model and memory in use (process RSS; GPU memory when on CUDA)."""

from __future__ import annotations

import os
import resource
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

from engine.api import ModelInfo

from ..state.messages import MessageLog

REFRESH_MS = 2000


def cpu_memory_bytes() -> int:
    """Resident memory of this process (Linux: current; elsewhere: peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def gpu_memory_bytes() -> tuple[int, int] | None:
    """(allocated, reserved) by torch on the current CUDA device, or None without CUDA."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.memory_allocated(), torch.cuda.memory_reserved()


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


class StatusPanel:
    """Adds permanent labels to a status bar and keeps them current; messages show there too.
    The model labels follow show_loading / show_model / show_failed."""

    def __init__(self, bar: QStatusBar, messages: MessageLog) -> None:
        self.bar = bar
        self.device = QLabel("device: …")
        self.model = QLabel("model: loading…")
        self.memory = QLabel("")
        self.model.setToolTip("The model in use (Engine menu: model manager, model file, demo)")
        self.device.setToolTip("Where the model runs and its number type (Engine > Device)")
        self.memory.setToolTip("Memory this editor uses now: RAM, and GPU memory on CUDA")
        for w in (self.model, self.device, self.memory):
            bar.addPermanentWidget(w)
        self.timer = QTimer(bar)
        self.timer.setObjectName("memory-status")
        self.timer.timeout.connect(self.refresh_memory)
        self.timer.start(REFRESH_MS)
        messages.events.added.connect(lambda m: bar.showMessage(m.text, 8000))
        self.refresh_memory()

    def show_loading(self) -> None:
        self.model.setText("model: loading…")

    def show_failed(self, _message: str = "") -> None:
        self.model.setText("model: not loaded")
        self.device.setText("device: –")

    def show_model(self, info: ModelInfo) -> None:
        self.model.setText(f"model: {info.name}")
        device = info.device
        torch = sys.modules.get("torch")
        if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
            device = f"{device} ({torch.cuda.get_device_name()})"
        self.device.setText(f"device: {device} · {info.dtype}")
        self.refresh_memory()

    def refresh_memory(self) -> None:
        text = f"RAM {human(cpu_memory_bytes())}"
        gpu = gpu_memory_bytes()
        if gpu is not None:
            text += f" · GPU {human(gpu[0])} (reserved {human(gpu[1])})"
        self.memory.setText(text)

    def shutdown(self) -> None:
        self.timer.stop()
