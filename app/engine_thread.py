"""The engine thread: one QThread owning the pipeline, running one request at a time.

    engine = EngineThread(loader)            # no thread running yet: views can be built and tested
    engine.worker.loaded.connect(...)        # typed signals, delivered queued on the GUI thread
    engine.start()                           # the thread starts; nothing loaded yet
    engine.load(model, device, precision, options)   # loaded on the engine thread; options:
                                             # load_pipeline's keywords (offload, window, ...)
    engine.submit(request, cancel_event)     # frame_ready / progress, then finished | failed | cancelled
    cancel_event.set()                       # from the GUI thread: stops within one frame
    engine.shutdown()

QImages are built here, off the GUI thread; the GUI paints them. Every exception of a job
ends in `failed` with a readable message: the thread survives and takes the next request.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.api import Cancelled, EngineError, GenerateRequest

from .images import to_qimage

log = logging.getLogger(__name__)

# (model, device, precision, **options) -> Pipeline; options (load_pipeline's keywords: offload,
# window, aspect_ratio, config, text_encoder, vae) are given for a model file or Hub id, never for
# the built-in demo model
Loader = Callable[..., object]


def default_loader(model: str | None, device: str, dtype: str, **options):
    from engine.registry import load_pipeline

    return load_pipeline(model or None, device, dtype, **options)


def _oom_types() -> tuple[type[BaseException], ...]:
    import torch

    return (torch.cuda.OutOfMemoryError, MemoryError)


def _free_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class LoadError(Exception):
    """A model that did not load, with the message for the user."""


class EngineWorker(QObject):
    """Lives on the engine thread; its slots run there, its signals reach the GUI queued."""

    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str)
    started = Signal(int)  # request id
    frame_ready = Signal(
        int, int, object, object
    )  # request id, start, frames (n,H,W,3) uint8, [QImage]
    progress = Signal(int, int, int)  # request id, frames done, total
    finished = Signal(int)
    failed = Signal(int, str)
    cancelled = Signal(int)

    def __init__(self, loader: Loader) -> None:
        super().__init__()
        self._loader = loader
        self.pipeline = None
        self._last_good: tuple[str, str, str, dict] | None = None

    @Slot(str, str, str, object)
    def load(self, model: str, device: str, precision: str, options: dict) -> None:
        """Load a model; when that fails, say why and reload the last model that worked (else the
        built-in demo model), so a wrong file never leaves the editor without one."""
        self.pipeline = None  # free the device before loading the next model
        _free_gpu_memory()
        try:
            pipeline = self._load(model, device, precision, options)
        except LoadError as exc:
            self.load_failed.emit(str(exc))
            fallback = self._last_good or (("", device, precision, {}) if model else None)
            if fallback is not None and fallback != (model, device, precision, options):
                try:
                    pipeline = self._load(*fallback)
                except LoadError as again:
                    log.error("the previous model does not load either: %s", again)
                    return
                self.pipeline = pipeline
                self.loaded.emit(pipeline.info)
            return
        self._last_good = (model, device, precision, options)
        self.pipeline = pipeline
        self.loaded.emit(pipeline.info)

    def _load(self, model: str, device: str, precision: str, options: dict):
        try:
            pipeline = self._loader(model or None, device, precision, **options)
        except EngineError as exc:
            raise LoadError(str(exc)) from exc
        except _oom_types():
            _free_gpu_memory()
            raise LoadError(
                "out of memory while loading the model: try a smaller memory preset in"
                " Engine > Settings, another device or precision"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a damaged model file can raise anything
            log.exception("loading %s failed", model or "the demo model")
            raise LoadError(f"cannot load the model: {type(exc).__name__}: {exc}") from exc
        if getattr(pipeline.info, "device", "cpu").startswith("cpu"):
            _leave_a_core_for_the_gui()
        return pipeline

    @Slot(object, object)
    def run(self, request: GenerateRequest, cancel: threading.Event) -> None:
        rid = request.id
        if self.pipeline is None:
            self.failed.emit(rid, "no model is loaded")
            return
        if cancel.is_set():
            self.cancelled.emit(rid)
            return
        self.started.emit(rid)
        events = self.pipeline.generate(request, cancel)
        try:
            for event in events:
                if event.request_id != rid:
                    continue
                images = [to_qimage(f) for f in event.frames]
                self.frame_ready.emit(rid, event.start, event.frames, images)
                self.progress.emit(rid, event.done, event.total)
                if cancel.is_set():
                    raise Cancelled()
        except Cancelled:
            self.cancelled.emit(rid)
        except EngineError as exc:
            self.failed.emit(rid, _in_editor_words(str(exc)))
        except _oom_types():
            _free_gpu_memory()
            self.failed.emit(rid, OUT_OF_MEMORY)
        except Exception as exc:  # noqa: BLE001 - a bug in a job must not kill the engine thread
            log.exception("request %d failed", rid)
            self.failed.emit(rid, f"engine error: {type(exc).__name__}: {exc}")
        else:
            self.finished.emit(rid)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()


OUT_OF_MEMORY = (
    "out of memory: try fewer frames, or a smaller memory preset (offload, a shorter window)"
    " in Engine > Settings"
)


def _in_editor_words(message: str) -> str:
    """The engine's out-of-memory advice names command-line options; the editor names its own."""
    return OUT_OF_MEMORY if message.startswith("out of GPU memory") else message


def _leave_a_core_for_the_gui() -> None:
    import torch

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)


class EngineThread(QObject):
    """GUI-side handle: starts the thread (on `start`), forwards requests to the worker, shuts down."""

    _load = Signal(str, str, str, object)
    _run = Signal(object, object)

    def __init__(self, loader: Loader | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("engine")
        self.worker = EngineWorker(loader or default_loader)
        self.worker.moveToThread(self.thread)
        self._load.connect(self.worker.load)
        self._run.connect(self.worker.run)

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        if not self.thread.isRunning():
            self.thread.start()

    def load(
        self,
        model: str | None,
        device: str = "auto",
        precision: str = "auto",
        options: dict | None = None,
    ) -> None:
        self._load.emit(model or "", device, precision, dict(options or {}))

    def submit(self, request: GenerateRequest, cancel: threading.Event) -> None:
        self._run.emit(request, cancel)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop the thread after its current job (cancel that first); True once it has ended."""
        if not self.thread.isRunning():
            return True
        self.thread.quit()
        ok = self.thread.wait(timeout_ms)
        if ok:
            self.worker.pipeline = None
        else:
            log.error("the engine thread did not stop within %d ms", timeout_ms)
        return ok
