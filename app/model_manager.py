"""The model manager: the released STARFlow-V 7B's three parts (flow checkpoint, T5 text encoder,
Wan2.2 VAE), each from disk or from the Hugging Face Hub: licence shown and accepted, size, progress,
cancel and resume, disk-space check, every file checked before use.

All network and disk work runs on the manager's own QThread (`HubWorker`), one call at a time;
each part is a `PartPanel` view over an engine manager (`ModelManager` for the flow, `PartManager`
for the others). A checked flow checkpoint is emitted as `chosen(path)`, which the main window
loads (a failed load falls back to the model in use); a checked text encoder or VAE folder is
stored in the settings (`parts/text-encoder`, `parts/vae`) and emitted as `part_ready(key, path)`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
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
from engine.starflow_v.parts import PARTS, manager_for

from .dialogs import Dialogs
from .settings import Settings
from .state.engine_presets import PRESETS, gpu_memory, preset_for

log = logging.getLogger(__name__)

FLOW = "flow"
KEYS = (FLOW, "text-encoder", "vae")
TITLES = {
    FLOW: "Flow checkpoint",
    "text-encoder": "T5 text encoder",
    "vae": "Wan2.2 VAE",
}
LOCAL_HINTS = {
    FLOW: ".safetensors or .pth checkpoint",
    "text-encoder": "flan-t5-xl folder (config.json, tokenizer, weights)",
    "vae": "diffusers VAE folder, or the reference's Wan2.2_VAE.pth",
}


# peak GPU memory (GiB) of 81 frames at 480p with guidance, by memory preset (card GB): measured
# by benchmarks/memory_7b.py (the README's table); the CUDA context comes on top
PEAK_GIB = {p.gigabytes: p.peak_gib for p in PRESETS}  # measured (benchmarks/memory_7b.py)
CONTEXT_GIB = 1.0  # CUDA context and allocator slack, kept free on the card


def flow_download_bytes(manifest_path: Path = MANIFEST_PATH) -> int:
    """The flow checkpoint's size in fp32 from the manifest's parameter count (the Hub gives the
    exact size with the licence)."""
    return int(json.loads(Path(manifest_path).read_text())["total_parameters"]) * 4


def requirements_text(gpu_bytes: int | None, gpu_name: str, flow_bytes: int | None = None) -> str:
    """What the 7B needs (download, disk, GPU memory) and whether this machine's GPU runs it: the
    preset the editor picks for the card (engine_presets.preset_for) and that preset's peak."""
    flow = (flow_bytes if flow_bytes is not None else flow_download_bytes()) / 2**30
    smallest = min((g for g, peak in PEAK_GIB.items() if peak + CONTEXT_GIB <= g), default=24)
    needs = (
        f"Download: the flow checkpoint, about {flow:.0f} GiB, plus the T5 encoder and the VAE"
        " (their sizes show with their licences).\n"
        "Disk: about twice the checkpoint free (a .pth is converted once).\n"
        f"GPU: one CUDA card of {smallest} GB or more (peak {PEAK_GIB[smallest]} GiB with the"
        f" {smallest} GB preset, {PEAK_GIB[80]} GiB without offload)."
    )
    preset = preset_for(gpu_bytes)
    if preset is None:
        machine = (
            "This machine has no CUDA GPU: the 7B cannot run here (the demo model runs on the CPU)."
        )
        return f"{needs}\n{machine}"
    gib = gpu_bytes / 2**30
    card = f"{gpu_name or 'GPU'} with {gib:.0f} GiB"
    peak = PEAK_GIB.get(preset.gigabytes)
    if peak is None or peak + CONTEXT_GIB <= gib:
        peak_text = f", peak {peak} GiB" if peak is not None else ""
        machine = f"This machine's {card} runs it with the {preset.name} preset{peak_text}."
    else:
        machine = (
            f"This machine's {card} is too small for the 7B: its {preset.name} preset peaks at"
            f" {peak} GiB (a {smallest} GB card runs it)."
        )
    return f"{needs}\n{machine}"


def this_machine_text() -> str:
    """requirements_text for the GPU found here."""
    total = gpu_memory()
    name = ""
    if total:
        import torch

        name = torch.cuda.get_device_name(0)
    return requirements_text(total, name)


def _size(n: int) -> str:
    if n >= 2**27:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


class HubWorker(QObject):
    """Runs manager calls on the manager's thread; every signal names the part."""

    license_ready = Signal(str, str)  # part, licence text
    sized = Signal(str, object, object)  # part, bytes to download, bytes in all
    progress = Signal(str, object, object)  # part, bytes done, total bytes (None: unknown)
    ready = Signal(str, str)  # part, a checked file or folder
    failed = Signal(str, str)
    cancelled = Signal(str)

    @Slot(str, object)
    def license(self, key: str, manager) -> None:
        def work() -> None:
            self.license_ready.emit(key, manager.license_text())
            self.sized.emit(key, *manager.size())

        self._run(key, work)

    @Slot(str, object, object)
    def fetch(self, key: str, manager, cancel: threading.Event) -> None:
        def work() -> None:
            path = manager.fetch(
                accept_license=True,
                progress=lambda done, total: self.progress.emit(key, done, total),
                cancel=cancel,
            )
            self.ready.emit(key, str(path))

        self._run(key, work)

    @Slot(str, object, str)
    def use_local(self, key: str, manager, path: str) -> None:
        self._run(key, lambda: self.ready.emit(key, str(manager.use_local(path))))

    def _run(self, key: str, work) -> None:
        try:
            work()
        except Cancelled:
            self.cancelled.emit(key)
        except EngineError as exc:
            self.failed.emit(key, str(exc))
        except OSError as exc:
            self.failed.emit(key, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged in full
            log.exception("model manager")
            self.failed.emit(key, f"unexpected error: {type(exc).__name__}: {exc}")


class PartPanel(QGroupBox):
    """One part: a local file/folder to check and use, or a Hub download with its licence."""

    def __init__(self, key: str, repo: str, local: str, parent: QWidget | None = None) -> None:
        super().__init__(f"{TITLES[key]}", parent)
        self.key = key
        self.local_path = QLineEdit(local)
        self.local_path.setPlaceholderText(LOCAL_HINTS[key])
        self.browse = QPushButton("File…")
        self.browse_folder = QPushButton("Folder…")
        self.use_local = QPushButton("Check and use")
        row = QHBoxLayout()
        row.addWidget(QLabel("On disk"))
        row.addWidget(self.local_path, 1)
        if key != "text-encoder":
            row.addWidget(self.browse)
        if key != FLOW:
            row.addWidget(self.browse_folder)
        row.addWidget(self.use_local)

        self.repo = QLineEdit(repo)
        self.size = QLabel("")
        self.show_license = QPushButton("Show licence and size")
        self.license_text = QPlainTextEdit(readOnly=True)
        self.license_text.setPlaceholderText("The licence appears here; read it to accept.")
        self.license_text.setFixedHeight(64)
        self.accept_box = QCheckBox("I have read and accept this licence")
        self.download = QPushButton("Download")
        self.download.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel")
        self.bar = QProgressBar()
        self.bar.setFormat("%p%")
        hub = QHBoxLayout()
        hub.addWidget(QLabel("Hub"))
        hub.addWidget(self.repo, 1)
        hub.addWidget(self.size)
        hub.addWidget(self.show_license)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_box, 1)
        buttons.addWidget(self.download)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(hub)
        layout.addWidget(self.license_text)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)

    def set_tooltips(self) -> None:
        title = TITLES[self.key]
        self.local_path.setToolTip(f"{title} on this machine: {LOCAL_HINTS[self.key]}")
        self.browse.setToolTip("Choose a file")
        self.browse_folder.setToolTip("Choose a folder")
        self.use_local.setToolTip(f"Check the {title.lower()} on disk and use it")
        self.repo.setToolTip("The Hugging Face Hub repository it downloads from")
        self.show_license.setToolTip("Fetch the licence to read and the download size")
        self.accept_box.setToolTip("Downloading needs the licence read and accepted")
        self.download.setToolTip("Download (resumes a partial download; checks disk space first)")
        self.cancel_button.setToolTip("Stop the download; the partial file is kept")
        self.bar.setToolTip("Download progress")

    def inputs(self) -> tuple[QWidget, ...]:
        return (
            self.local_path,
            self.browse,
            self.browse_folder,
            self.use_local,
            self.repo,
            self.show_license,
        )

    def source_changed(self) -> None:
        """Another repository: its licence must be read and accepted again."""
        self.license_text.clear()
        self.size.clear()
        self.accept_box.setChecked(False)

    def refresh(self, idle: bool, downloading: bool) -> None:
        self.download.setEnabled(idle and self.accept_box.isChecked())
        has_license = bool(self.license_text.toPlainText())
        self.accept_box.setEnabled(has_license)
        self.license_text.setVisible(has_license)  # room for three parts on a laptop screen
        self.cancel_button.setEnabled(downloading)
        for w in self.inputs():
            w.setEnabled(idle)

    def show_progress(self, done: int, total: int | None) -> None:
        if total:
            self.bar.setMaximum(1000)
            self.bar.setValue(int(1000 * done / total))
            self.bar.setFormat(f"%p%  ({_size(done)} of {_size(total)})")
        else:
            self.bar.setMaximum(0)

    def show_done(self) -> None:
        self.bar.setMaximum(1000)
        self.bar.setValue(1000)


class ModelManagerDialog(QDialog):
    chosen = Signal(str)  # a verified flow checkpoint, about to be loaded
    part_ready = Signal(str, str)  # "text-encoder" / "vae", a checked local folder

    _license = Signal(str, object)
    _fetch = Signal(str, object, object)
    _use_local = Signal(str, object, str)

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
        self.active: str | None = None  # the part the worker is busy with
        self.setWindowTitle("Model manager — STARFlow-V 7B")
        self.setMinimumWidth(640)

        self.thread = QThread(self)
        self.thread.setObjectName("model-manager")
        self.worker = HubWorker()
        self.worker.moveToThread(self.thread)
        self._license.connect(self.worker.license)
        self._fetch.connect(self.worker.fetch)
        self._use_local.connect(self.worker.use_local)
        self.worker.license_ready.connect(self._on_license)
        self.worker.sized.connect(self._on_sized)
        self.worker.progress.connect(self._on_progress)
        self.worker.ready.connect(self._on_ready)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.thread.start()

        self._build()
        self._refresh()

    # ---- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        q = self.settings.q
        repos = {FLOW: q.value("hub/repo", DEFAULT_REPO, str)}
        repos.update({k: q.value(f"parts/{k}/repo", p.repo_id, str) for k, p in PARTS.items()})
        local = {FLOW: q.value("hub/local", "", str)}
        local.update({k: q.value(f"parts/{k}", "", str) for k in PARTS})
        self.panels = {k: PartPanel(k, repos[k], local[k]) for k in KEYS}
        flow = self.panels[FLOW]
        # the flow panel's fields, as the dialog's own (tests and older callers use these names)
        self.local_path, self.browse, self.use_local = flow.local_path, flow.browse, flow.use_local
        self.repo, self.show_license, self.license_text = (
            flow.repo,
            flow.show_license,
            flow.license_text,
        )
        self.accept_box, self.download, self.bar = flow.accept_box, flow.download, flow.bar
        self.cancel_button = flow.cancel_button

        self.revision = QLineEdit(q.value("hub/revision", DEFAULT_REVISION, str))
        self.filename = QLineEdit(q.value("hub/filename", DEFAULT_FILENAME, str))
        self.endpoint = QLineEdit(q.value("hub/endpoint", os.environ.get("HF_ENDPOINT", ""), str))
        self.endpoint.setPlaceholderText("https://huggingface.co (or a mirror)")
        self.folder = QLineEdit(str(self.settings.models_dir))
        form = QFormLayout()
        form.addRow("Flow revision / file", _pair(self.revision, self.filename))
        form.addRow("Endpoint", self.endpoint)
        form.addRow("Save in", self.folder)

        self.requirements = QLabel(this_machine_text())
        self.requirements.setWordWrap(True)
        self.requirements.setObjectName("dim")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # a long error scrolls in a box of a few lines instead of squeezing the fields above
        self.status_box = QScrollArea()
        self.status_box.setWidget(self.status)
        self.status_box.setWidgetResizable(True)
        self.status_box.setFrameShape(QScrollArea.Shape.NoFrame)
        self.status_box.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.status_box.setFixedHeight(4 * self.status.fontMetrics().lineSpacing() + 6)
        self.status_box.setVisible(False)  # until there is something to say
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close the manager (a running download is cancelled)")
        content = _Unsqueezed()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 6, 0)
        column.addWidget(self.requirements)
        for panel in self.panels.values():
            column.addWidget(panel)
        column.addLayout(form)
        column.addStretch(1)
        # on a short screen the parts scroll; the status and Close stay in view
        self.scroll = QScrollArea()
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.status_box)
        layout.addWidget(self.close_button)
        self._tooltips()

        for key, panel in self.panels.items():
            panel.browse.clicked.connect(lambda _c=False, k=key: self._browse(k))
            panel.browse_folder.clicked.connect(lambda _c=False, k=key: self._browse_folder(k))
            panel.use_local.clicked.connect(lambda _c=False, k=key: self.check_local(k))
            panel.show_license.clicked.connect(lambda _c=False, k=key: self.fetch_license(k))
            panel.accept_box.toggled.connect(lambda _on: self._refresh())
            panel.download.clicked.connect(lambda _c=False, k=key: self.start_download(k))
            panel.cancel_button.clicked.connect(self.cancel_download)
            panel.repo.textChanged.connect(lambda _t, p=panel: self._source_changed(p))
        for edit in (self.revision, self.filename, self.endpoint):
            edit.textChanged.connect(lambda _t: self._source_changed(self.panels[FLOW]))
        self.close_button.clicked.connect(self.reject)

    def _tooltips(self) -> None:
        self.revision.setToolTip("Branch, tag or commit of the flow's Hub repository")
        self.filename.setToolTip("The checkpoint's file name in that repository")
        self.endpoint.setToolTip("The Hub's address; empty: huggingface.co or HF_ENDPOINT")
        self.folder.setToolTip("Where downloads are saved (needs the disk space named above)")
        for panel in self.panels.values():
            panel.set_tooltips()

    def showEvent(self, event) -> None:
        """The first show: tall enough for every part where the screen allows (Qt's own first
        size stops at two thirds of the screen)."""
        super().showEvent(event)
        if not getattr(self, "_sized", False):
            self._sized = True
            screen = self.screen().availableGeometry()
            want = self.scroll.widget().sizeHint().height() + self.status_box.height() + 80
            frame = self.frameGeometry().height() - self.height()  # a window manager's title
            self.resize(max(self.width(), 700), min(want, screen.height() - frame - 20))
            box = self.frameGeometry()
            box.moveCenter(
                self.parentWidget().geometry().center() if self.parentWidget() else screen.center()
            )
            box.moveTop(max(screen.top(), min(box.top(), screen.bottom() - box.height())))
            self.move(box.topLeft())

    def status_text(self) -> str:
        return self.status.text()

    # ---- state ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.active is not None

    def _refresh(self) -> None:
        idle = not self.busy
        for panel in self.panels.values():
            panel.refresh(idle, self.cancel_event is not None and self.active == panel.key)
        for w in (self.revision, self.filename, self.endpoint, self.folder):
            w.setEnabled(idle)

    def _source_changed(self, panel: PartPanel) -> None:
        panel.source_changed()
        self._refresh()

    def manager(self, key: str = FLOW):
        """The engine manager of one part, from the fields."""
        endpoint = self.endpoint.text().strip() or None
        folder = self.folder.text().strip()
        repo = self.panels[key].repo.text().strip()
        if key != FLOW:
            return manager_for(key, repo or PARTS[key].repo_id, folder, endpoint)
        source = HubSource(
            repo_id=repo or DEFAULT_REPO,
            filename=self.filename.text().strip() or DEFAULT_FILENAME,
            revision=self.revision.text().strip() or DEFAULT_REVISION,
            endpoint=endpoint,
        )
        return ModelManager(folder, source, self.manifest_path)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #ff8080;" if error else "")
        self.status.setText(text)
        self.status_box.setVisible(bool(text))

    def _begin(self, key: str, text: str):
        try:
            manager = self.manager(key)
        except (EngineError, OSError, ValueError) as exc:
            self._say(str(exc), error=True)
            return None
        self.active = key
        self._say(text)
        self._refresh()
        return manager

    def _end(self) -> None:
        self.active = None
        self.cancel_event = None
        self._refresh()

    # ---- actions --------------------------------------------------------------------------------
    def _browse(self, key: str) -> None:
        path = self.dialogs.open_model(self.settings.last_dir("model"))
        if path:
            self.settings.set_last_dir("model", path)
            self.panels[key].local_path.setText(path)

    def _browse_folder(self, key: str) -> None:
        path = QFileDialog.getExistingDirectory(self, TITLES[key], self.settings.last_dir("model"))
        if path:
            self.panels[key].local_path.setText(path)

    def check_local(self, key: str = FLOW) -> None:
        path = self.panels[key].local_path.text().strip()
        if not path:
            self._say(f"{TITLES[key]}: choose a file or folder first", error=True)
            return
        manager = self._begin(key, f"Checking {Path(path).name}…")
        if manager is not None:
            self._use_local.emit(key, manager, path)

    def fetch_license(self, key: str = FLOW) -> None:
        manager = self._begin(key, f"{TITLES[key]}: fetching the licence and size…")
        if manager is not None:
            self._license.emit(key, manager)

    def start_download(self, key: str = FLOW) -> None:
        panel = self.panels[key]
        if not panel.accept_box.isChecked():
            self._say("Accept the licence first", error=True)
            return
        manager = self._begin(key, f"{TITLES[key]}: starting the download…")
        if manager is None:
            return
        q = self.settings.q
        if key == FLOW:
            for name, edit in (
                ("repo", self.repo),
                ("revision", self.revision),
                ("filename", self.filename),
                ("endpoint", self.endpoint),
            ):
                q.setValue(f"hub/{name}", edit.text().strip())
        else:
            q.setValue(f"parts/{key}/repo", panel.repo.text().strip())
        self.settings.models_dir = self.folder.text().strip()
        self.cancel_event = threading.Event()
        panel.bar.setValue(0)
        self._refresh()
        self._fetch.emit(key, manager, self.cancel_event)

    def cancel_download(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
            self._say("Cancelling…")

    # ---- worker results --------------------------------------------------------------------------
    def _on_license(self, key: str, text: str) -> None:
        self.panels[key].license_text.setPlainText(text)
        self._say(f"{TITLES[key]}: read the licence; tick the box to accept it, then download.")
        self._refresh()

    def _on_sized(self, key: str, missing: int, whole: int) -> None:
        self._end()
        left = f", {_size(missing)} left" if missing != whole else ""
        self.panels[key].size.setText(f"{_size(whole)}{left}")

    def _on_progress(self, key: str, done: int, total: int | None) -> None:
        self.panels[key].show_progress(done, total)

    def _on_ready(self, key: str, path: str) -> None:
        self._end()
        self.panels[key].show_done()
        self.panels[key].local_path.setText(path)
        self.panels[key].size.setText("on disk")
        if key == FLOW:
            self.settings.q.setValue("hub/local", path)
            self._say(f"{Path(path).name} matches the 7B manifest: loading it…")
            self.chosen.emit(path)
            return
        self.settings.q.setValue(f"parts/{key}", path)
        self._say(f"{TITLES[key]} checked: {path}")
        self.part_ready.emit(key, path)

    def _on_failed(self, key: str, message: str) -> None:
        self._end()
        self._say(f"{TITLES[key]}: {message}. The current model stays in use.", error=True)

    def _on_cancelled(self, key: str) -> None:
        self._end()
        self._say(
            f"{TITLES[key]}: download cancelled; the partial file is kept and resumes next time."
        )

    # ---- life cycle ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel a download and stop the thread (called on close)."""
        self.cancel_download()
        self.thread.quit()
        self.thread.wait()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)


class _Unsqueezed(QWidget):
    """Scrolled content that never gets less height than it asks for (no field loses its text)."""

    def minimumSizeHint(self):  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        hint.setHeight(self.sizeHint().height())
        return hint


def _pair(a: QWidget, b: QWidget) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(a)
    row.addWidget(b, 2)
    return box
