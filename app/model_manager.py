"""The model manager: choose the released STARFlow-V checkpoint from disk or download it from the
Hugging Face Hub (licence shown and accepted, progress, resume, disk-space check, .pth converted to
.safetensors once, every file checked against the 7B manifest before use).

All network and disk work runs on the manager's own QThread (`HubWorker`); the dialog is a view
that enables what makes sense and shows progress and errors. When a checkpoint is ready the
dialog emits `chosen(path)`, which the main window loads; if that load fails the engine falls
back to the model in use, so the demo model stays usable.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.api import Cancelled, EngineError
from engine.starflow_v.hub import (
    DEFAULT_FILENAME,
    DEFAULT_REPO,
    DEFAULT_REVISION,
    MANIFEST_PATH,
    HubSource,
    ModelManager,
)

from .dialogs import Dialogs
from .settings import Settings

log = logging.getLogger(__name__)


class HubWorker(QObject):
    """Runs ModelManager calls on the manager's thread; one at a time."""

    license_ready = Signal(str)
    progress = Signal(object, object)  # bytes done, total bytes (None: unknown)
    ready = Signal(str)  # a verified .safetensors path
    failed = Signal(str)
    cancelled = Signal()

    @Slot(object)
    def license(self, manager: ModelManager) -> None:
        self._run(lambda: self.license_ready.emit(manager.license_text()))

    @Slot(object, object)
    def fetch(self, manager: ModelManager, cancel: threading.Event) -> None:
        def work() -> None:
            path = manager.fetch(
                accept_license=True,
                progress=lambda done, total: self.progress.emit(done, total),
                cancel=cancel,
            )
            self.ready.emit(str(path))

        self._run(work)

    @Slot(object, str)
    def use_local(self, manager: ModelManager, path: str) -> None:
        self._run(lambda: self.ready.emit(str(manager.use_local(path))))

    def _run(self, work) -> None:
        try:
            work()
        except Cancelled:
            self.cancelled.emit()
        except EngineError as exc:
            self.failed.emit(str(exc))
        except OSError as exc:
            self.failed.emit(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged in full
            log.exception("model manager")
            self.failed.emit(f"unexpected error: {type(exc).__name__}: {exc}")


class ModelManagerDialog(QDialog):
    chosen = Signal(str)  # a verified checkpoint, about to be loaded

    _license = Signal(object)
    _fetch = Signal(object, object)
    _use_local = Signal(object, str)

    def __init__(
        self,
        settings: Settings,
        dialogs: Dialogs,
        manifest_path: Path = MANIFEST_PATH,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings, self.dialogs = settings, dialogs
        self.manifest_path = manifest_path
        self.cancel_event: threading.Event | None = None
        self._waiting = False
        self.setWindowTitle("Model manager — STARFlow-V 7B")
        self.setMinimumWidth(560)

        self.thread = QThread(self)
        self.thread.setObjectName("model-manager")
        self.worker = HubWorker()
        self.worker.moveToThread(self.thread)
        self._license.connect(self.worker.license)
        self._fetch.connect(self.worker.fetch)
        self._use_local.connect(self.worker.use_local)
        self.worker.license_ready.connect(self._on_license)
        self.worker.progress.connect(self._on_progress)
        self.worker.ready.connect(self._on_ready)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.thread.start()

        self._build()
        self._refresh()

    # ---- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.settings
        self.local_path = QLineEdit(s.q.value("hub/local", "", str))
        self.local_path.setPlaceholderText(".safetensors or .pth checkpoint")
        self.browse = QPushButton("Browse…")
        self.use_local = QPushButton("Check and use")
        row = QHBoxLayout()
        row.addWidget(self.local_path, 1)
        row.addWidget(self.browse)
        row.addWidget(self.use_local)
        local = QGroupBox("Checkpoint on disk")
        QVBoxLayout(local).addLayout(row)

        self.repo = QLineEdit(s.q.value("hub/repo", DEFAULT_REPO, str))
        self.revision = QLineEdit(s.q.value("hub/revision", DEFAULT_REVISION, str))
        self.filename = QLineEdit(s.q.value("hub/filename", DEFAULT_FILENAME, str))
        self.endpoint = QLineEdit(s.q.value("hub/endpoint", os.environ.get("HF_ENDPOINT", ""), str))
        self.endpoint.setPlaceholderText("https://huggingface.co (or a mirror)")
        self.folder = QLineEdit(str(self.settings.models_dir))
        self.show_license = QPushButton("Show licence")
        self.license_text = QPlainTextEdit(readOnly=True)
        self.license_text.setPlaceholderText("The model licence appears here; read it to accept.")
        self.license_text.setFixedHeight(120)
        self.accept_box = QCheckBox("I have read and accept the model licence")
        self.download = QPushButton("Download")
        self.download.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel download")
        self.bar = QProgressBar()
        self.bar.setFormat("%p%")
        form = QFormLayout()
        form.addRow("Repository", self.repo)
        form.addRow("Revision", self.revision)
        form.addRow("File", self.filename)
        form.addRow("Endpoint", self.endpoint)
        form.addRow("Save in", self.folder)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_license)
        buttons.addStretch(1)
        buttons.addWidget(self.download)
        buttons.addWidget(self.cancel_button)
        hub = QGroupBox("Download from the Hugging Face Hub")
        hub_layout = QVBoxLayout(hub)
        hub_layout.addLayout(form)
        hub_layout.addWidget(self.license_text)
        hub_layout.addWidget(self.accept_box)
        hub_layout.addLayout(buttons)
        hub_layout.addWidget(self.bar)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.close_button = QPushButton("Close")
        layout = QVBoxLayout(self)
        layout.addWidget(local)
        layout.addWidget(hub)
        layout.addWidget(self.status)
        layout.addWidget(self.close_button)

        self.browse.clicked.connect(self._browse)
        self.use_local.clicked.connect(self.check_local)
        self.show_license.clicked.connect(self.fetch_license)
        self.accept_box.toggled.connect(lambda _on: self._refresh())
        self.download.clicked.connect(self.start_download)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.close_button.clicked.connect(self.reject)
        for edit in (self.repo, self.revision, self.filename, self.endpoint):
            edit.textChanged.connect(self._source_changed)

    # ---- state ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.cancel_event is not None or self._waiting

    def _refresh(self) -> None:
        downloading = self.cancel_event is not None
        idle = not self.busy
        self.download.setEnabled(idle and self.accept_box.isChecked())
        self.accept_box.setEnabled(bool(self.license_text.toPlainText()))
        self.cancel_button.setEnabled(downloading)
        for w in (
            self.use_local,
            self.browse,
            self.show_license,
            self.repo,
            self.revision,
            self.filename,
            self.endpoint,
            self.folder,
        ):
            w.setEnabled(idle)

    def _source_changed(self) -> None:
        """Another repository or file: its licence must be read and accepted again."""
        self.license_text.clear()
        self.accept_box.setChecked(False)
        self._refresh()

    def manager(self) -> ModelManager:
        source = HubSource(
            repo_id=self.repo.text().strip() or DEFAULT_REPO,
            filename=self.filename.text().strip() or DEFAULT_FILENAME,
            revision=self.revision.text().strip() or DEFAULT_REVISION,
            endpoint=self.endpoint.text().strip() or None,
        )
        return ModelManager(self.folder.text().strip(), source, self.manifest_path)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setObjectName("error" if error else "")
        self.status.setStyleSheet("color: #ff8080;" if error else "")
        self.status.setText(text)

    def _begin(self, text: str) -> ModelManager | None:
        try:
            manager = self.manager()
        except (EngineError, OSError, ValueError) as exc:
            self._say(str(exc), error=True)
            return None
        self._waiting = True
        self._say(text)
        self._refresh()
        return manager

    def _end(self) -> None:
        self._waiting = False
        self.cancel_event = None
        self._refresh()

    # ---- actions --------------------------------------------------------------------------------
    def _browse(self) -> None:
        path = self.dialogs.open_model(self.settings.last_dir("model"))
        if path:
            self.settings.set_last_dir("model", path)
            self.local_path.setText(path)

    def check_local(self) -> None:
        path = self.local_path.text().strip()
        if not path:
            self._say("Choose a checkpoint file first", error=True)
            return
        manager = self._begin(f"Checking {Path(path).name} against the 7B manifest…")
        if manager is not None:
            self.settings.q.setValue("hub/local", path)
            self._use_local.emit(manager, path)

    def fetch_license(self) -> None:
        manager = self._begin("Fetching the licence…")
        if manager is not None:
            self._license.emit(manager)

    def start_download(self) -> None:
        if not self.accept_box.isChecked():
            self._say("Accept the model licence first", error=True)
            return
        manager = self._begin("Starting the download…")
        if manager is None:
            return
        q = self.settings.q
        for key, edit in (
            ("repo", self.repo),
            ("revision", self.revision),
            ("filename", self.filename),
            ("endpoint", self.endpoint),
        ):
            q.setValue(f"hub/{key}", edit.text().strip())
        self.settings.models_dir = self.folder.text().strip()
        self.cancel_event = threading.Event()
        self.bar.setValue(0)
        self._refresh()
        self._fetch.emit(manager, self.cancel_event)

    def cancel_download(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
            self._say("Cancelling…")

    # ---- worker results --------------------------------------------------------------------------
    def _on_license(self, text: str) -> None:
        self._end()
        self.license_text.setPlainText(text)
        self._say("Read the licence; tick the box to accept it, then download.")
        self._refresh()

    def _on_progress(self, done: int, total: int | None) -> None:
        if total:
            self.bar.setMaximum(1000)
            self.bar.setValue(int(1000 * done / total))
            self.bar.setFormat(f"%p%  ({done / 2**30:.2f} of {total / 2**30:.2f} GiB)")
        else:
            self.bar.setMaximum(0)

    def _on_ready(self, path: str) -> None:
        self._end()
        self.bar.setMaximum(1000)
        self.bar.setValue(1000)
        self._say(f"{Path(path).name} matches the 7B manifest: loading it…")
        self.chosen.emit(path)

    def _on_failed(self, message: str) -> None:
        self._end()
        self._say(f"{message}. The current model stays in use.", error=True)

    def _on_cancelled(self) -> None:
        self._end()
        self._say("Download cancelled: the partial file is kept and resumes next time.")

    # ---- life cycle ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel a download and stop the thread (called on close)."""
        self.cancel_download()
        self.thread.quit()
        self.thread.wait()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)
