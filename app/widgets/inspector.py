"""The inspector: the selected clip's request (mode, prompt, seed, guidance, temperature, frames,
source), editable as the next request, with Generate / Regenerate / Extend / Edit / Cancel."""

from __future__ import annotations

import random

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.api import ModelInfo

from ..images import to_qimage
from ..state.draft import FIELDS, Draft
from ..state.jobs import JobQueue, JobState
from ..state.timeline import Timeline

MODES = [
    ("t2v", "Text → video"),
    ("i2v", "Image → video"),
    ("v2v", "Edit video (v2v)"),
    ("extend", "Extend clip"),
]
PLACEHOLDERS = {
    "t2v": "a small red circle moves left on a black background",
    "i2v": "describe the motion, e.g. a large blue square moves right on a white background",
    "v2v": "an instruction, e.g. remove the red circle",
    "extend": "what happens next (empty: the clip's own prompt)",
}


class InspectorView(QWidget):
    """A view of the Draft (written back field by field), the selected clip of the Timeline and
    the running job of the JobQueue; its buttons emit the *_requested signals."""

    generate_requested = Signal()
    regenerate_requested = Signal()
    extend_requested = Signal()
    edit_requested = Signal()
    cancel_requested = Signal()
    open_image_requested = Signal()

    def __init__(
        self, draft: Draft, timeline: Timeline, jobs: JobQueue, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.draft, self.timeline, self.jobs = draft, timeline, jobs
        self._updating = False
        self.setMinimumWidth(300)

        self.heading = QLabel("New request")
        self.heading.setObjectName("heading")
        self.subheading = QLabel("")
        self.subheading.setObjectName("dim")
        self.subheading.setWordWrap(True)

        self.mode = QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)
        self.prompt = QPlainTextEdit()
        self.prompt.setTabChangesFocus(True)
        self.prompt.setFixedHeight(84)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.dice = QToolButton(text="Random", toolTip="Pick a random seed")
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 20.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(2)
        # sampling temperature; the minimum (0) stands for the model's own default (None)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setDecimals(2)
        self.temperature.setToolTip(
            "Sampling noise: lower is steadier, higher more varied; the minimum is the model default"
        )
        self.frames = QSpinBox()
        self.frames.setRange(1, 2048)
        self.frames.setSuffix(" frames")

        self.source_thumb = QLabel()
        self.source_thumb.setFixedSize(64, 48)
        self.source_thumb.setFrameShape(QFrame.Shape.StyledPanel)
        self.source_thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.source_label = QLabel("none")
        self.source_label.setObjectName("dim")
        self.source_label.setWordWrap(True)
        self.open_image = QPushButton("Open image…")
        policy = self.open_image.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # the form keeps its height from mode to mode
        self.open_image.setSizePolicy(policy)

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        source_row = QHBoxLayout()
        source_row.addWidget(self.source_thumb)
        source_col = QVBoxLayout()
        source_col.addWidget(self.source_label)
        source_col.addWidget(self.open_image)
        source_row.addLayout(source_col, 1)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.addRow("Mode", self.mode)
        form.addRow("Prompt", self.prompt)
        form.addRow("Seed", seed_row)
        form.addRow("Guidance", self.guidance)
        form.addRow("Temperature", self.temperature)
        form.addRow("Length", self.frames)
        form.addRow("Source", source_row)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("primary")
        self.generate_button.setToolTip("Queue the request above (Ctrl+Enter)")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("The selected clip again with another seed")
        self.extend_button = QPushButton("Extend")
        self.extend_button.setToolTip("Continue the selected clip from its last frames")
        self.edit_button = QPushButton("Edit")
        self.edit_button.setToolTip(
            "Apply the prompt as an instruction to the selected clip (a new clip)"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("danger")
        self.cancel_button.setToolTip("Stop the running job; its frames are kept (Esc)")
        buttons = QGridLayout()
        buttons.addWidget(self.generate_button, 0, 0, 1, 2)
        buttons.addWidget(self.regenerate_button, 1, 0)
        buttons.addWidget(self.extend_button, 1, 1)
        buttons.addWidget(self.edit_button, 2, 0)
        buttons.addWidget(self.cancel_button, 2, 1)

        # the request form scrolls when the dock is short; the buttons below it always show
        self.form = QWidget()
        form_layout = QVBoxLayout(self.form)
        form_layout.setContentsMargins(10, 10, 10, 4)
        form_layout.addWidget(self.heading)
        form_layout.addWidget(self.subheading)
        form_layout.addSpacing(6)
        form_layout.addLayout(form)
        form_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.form)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumHeight(90)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 10)
        layout.addWidget(self.scroll, 1)
        buttons.setContentsMargins(10, 6, 10, 0)
        layout.addLayout(buttons)
        self.buttons = buttons

        # view -> model
        self.mode.currentIndexChanged.connect(lambda _i: self._write(mode=self.mode.currentData()))
        self.prompt.textChanged.connect(lambda: self._write(prompt=self.prompt.toPlainText()))
        self.seed.valueChanged.connect(lambda v: self._write(seed=v))
        self.guidance.valueChanged.connect(lambda v: self._write(guidance=v))
        self.temperature.valueChanged.connect(lambda v: self._write(temperature=v or None))
        self.frames.valueChanged.connect(lambda v: self._write(frames=v))
        self.frames.editingFinished.connect(self._snap_length)
        self.dice.clicked.connect(lambda: self.draft.set(seed=random.randrange(2**31)))
        self.open_image.clicked.connect(self.open_image_requested)
        self.generate_button.clicked.connect(self.generate_requested)
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        self.extend_button.clicked.connect(self.extend_requested)
        self.edit_button.clicked.connect(self.edit_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        # model -> view
        self.draft.events.changed.connect(self._on_draft)
        timeline.events.selection.connect(lambda _id: self._refresh_buttons())
        timeline.events.changed.connect(self._refresh_buttons)
        jobs.events.updated.connect(lambda _job: self._refresh_buttons())
        jobs.events.changed.connect(self._refresh_buttons)
        self.show_model(None)
        for name in FIELDS:
            self._on_draft(name)

    def _write(self, **changes) -> None:
        if not self._updating:
            self.draft.set(**changes)

    def _on_draft(self, name: str) -> None:
        self._updating = True
        try:
            d = self.draft
            if name == "mode":
                self.mode.setCurrentIndex(self.mode.findData(d.mode))
                self.prompt.setPlaceholderText(PLACEHOLDERS[d.mode])
                self.frames.setEnabled(d.mode != "v2v")
                self._refresh_source()
            elif name == "prompt" and self.prompt.toPlainText() != d.prompt:
                self.prompt.setPlainText(d.prompt)
            elif name == "seed":
                self.seed.setValue(d.seed)
            elif name == "guidance":
                self.guidance.setValue(d.guidance)
            elif name == "temperature":
                self.temperature.setValue(d.temperature or 0.0)
            elif name == "frames":
                self.frames.setValue(d.frames)
            elif name in ("image", "clip"):
                self._refresh_source()
                self._refresh_buttons()
        finally:
            self._updating = False

    def preferred_height(self) -> int:
        """The height that shows the whole form and the buttons without scrolling."""
        margins = self.layout().contentsMargins()
        buttons = self.buttons.sizeHint().height()
        spacing = self.layout().spacing()
        return self.form.sizeHint().height() + buttons + spacing + margins.top() + margins.bottom()

    def show_model(self, info: ModelInfo | None) -> None:
        """The temperature's special value names the loaded model's default temperature; the
        length steps by the lengths the model's video codec makes (1 + step * n frames)."""
        own = f" ({info.temperature:g})" if info is not None else ""
        self.temperature.setSpecialValueText(f"Model default{own}")
        self.frames.setSingleStep(info.frame_step if info is not None else 1)
        self._snap_length()

    def _snap_length(self) -> None:
        """A typed length the codec cannot make becomes the nearest it can (ties: the longer)."""
        step, n = self.frames.singleStep(), self.frames.value()
        snapped = 1 + step * ((2 * (n - 1) + step) // (2 * step))
        if snapped != n:
            self.frames.setValue(snapped)

    def _refresh_source(self) -> None:
        d, t = self.draft, self.timeline
        thumb, text = None, "none (text only)"
        if d.mode == "i2v":
            if d.image is not None:
                thumb, text = d.image.image, f"start image: {d.image.name}"
            else:
                text = "drop an image on the timeline or preview"
        elif d.mode in ("v2v", "extend"):
            clip = t.clip(d.clip)
            if clip is not None:
                thumb = t.media[clip.media].frames[
                    clip.stop - 1 if d.mode == "extend" else clip.start
                ]
                text = f"clip: {clip.name or clip.id} ({clip.length} frames)"
            else:
                text = "select a clip on the timeline"
        self.source_label.setText(text)
        if thumb is None:
            self.source_thumb.clear()
        else:
            self.source_thumb.setPixmap(
                QPixmap.fromImage(to_qimage(thumb)).scaled(
                    self.source_thumb.size(),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        self.open_image.setVisible(d.mode == "i2v")

    def _refresh_buttons(self) -> None:
        t = self.timeline
        clip = t.clip(t.selected)
        if clip is None:
            self.heading.setText("New request")
            self.subheading.setText("Select a clip to see the request it was made with.")
        else:
            self.heading.setText(clip.name or "Clip")
            r = clip.request
            origin = (
                "imported video"
                if r is None
                else f"{r.mode} · seed {r.seed} · guidance {r.guidance:g}"
                + ("" if r.temperature is None else f" · temperature {r.temperature:g}")
                + f" · {r.model}"
            )
            self.subheading.setText(
                f"{clip.length} frames ({clip.start}–{clip.stop - 1}) · {origin}"
            )
        self.regenerate_button.setEnabled(clip is not None and clip.request is not None)
        self.extend_button.setEnabled(clip is not None)
        self.edit_button.setEnabled(clip is not None)
        running = self.jobs.running()
        self.cancel_button.setEnabled(running is not None and running.state == JobState.RUNNING)
        self._refresh_source()
