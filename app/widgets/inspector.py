"""The inspector: the selected clip's request (mode, prompt, seed, guidance, temperature, frames,
source), editable as the next request, with Generate / Regenerate / Extend / Edit / Cancel.

The prompt and its help live in `PromptPanel` (prompt_panel.py). The form fits any dock width
(long names elide), Length counts what the job makes (Extend: the new frames), the Seed field moves
only as its mode says, and a start image's crop is a choice made before generating."""

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
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.api import ModelInfo

from ..images import crop_note, to_qimage
from ..state.draft import FIELDS, MAX_TAKES, Draft
from ..state.jobs import JobQueue, JobState
from ..state.prompt_grammar import prompt_problem, scene_caption
from ..state.prompt_history import PromptHistory
from ..state.timeline import Timeline
from .prompt_panel import ElidedLabel, PromptPanel, tool_button

MODES = [
    ("t2v", "Text → video"),
    ("i2v", "Image → video"),
    ("v2v", "Edit (v2v)"),
    ("extend", "Extend"),
]
SEED_MODES = [
    ("fixed", "Lock", "Every job uses the seed shown"),
    ("next", "+1 per job", "The seed shown is used, then steps by one for the next job"),
    (
        "random",
        "New per job",
        "The seed shown is used, then a random one is drawn for the next job",
    ),
]
CROP_LABELS = [
    ("centre", "Crop centre"),
    ("start", "Crop top / left"),
    ("end", "Crop bottom / right"),
    ("fit", "Whole image (bars)"),
]
GENERIC_IMAGE_NAME = "start image"  # the name a selected clip's start image is given


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
        self,
        draft: Draft,
        timeline: Timeline,
        jobs: JobQueue,
        parent: QWidget | None = None,
        history: PromptHistory | None = None,
    ) -> None:
        super().__init__(parent)
        self.draft, self.timeline, self.jobs = draft, timeline, jobs
        self.history = history or PromptHistory(draft, timeline, jobs)
        self.info: ModelInfo | None = None
        self._updating = False
        self.setMinimumWidth(280)
        self._make_widgets()
        self._make_layout()
        self._connect()
        self.show_model(None)
        for name in FIELDS:
            self._on_draft(name)

    # ---- building --------------------------------------------------------------------------------
    def _make_widgets(self) -> None:
        self.heading = ElidedLabel("New request")
        self.heading.setObjectName("heading")
        self.subheading = ElidedLabel("")
        self.subheading.setObjectName("dim")
        self.scene = ElidedLabel("")  # an edited clip's scene (what Extend continues)
        self.scene.setObjectName("dim")

        self.mode = QComboBox(
            toolTip="What Generate makes: from text, from a start image, an edit "
            "of the selected clip, or more of it"
        )
        for key, label in MODES:
            self.mode.addItem(label, key)
        self.prompt_panel = PromptPanel(self.draft, self.timeline, self.history)
        panel = self.prompt_panel
        self.prompt, self.verdict, self.use_offer = panel.prompt, panel.verdict, panel.use_offer
        self.build, self.history_button = panel.build, panel.history_button
        self.seed = QSpinBox(toolTip="The seed of the next job")
        self.seed.setRange(0, 2**31 - 1)
        self.dice = tool_button("Random", "Pick a random seed")
        self.clip_seed = tool_button("Clip's", "Use the selected clip's seed")
        self.seed_mode = QComboBox(
            toolTip="How the Seed field moves after a job used it; selecting a clip or "
            "Regenerate never changes it"
        )
        for key, label, tip in SEED_MODES:
            self.seed_mode.addItem(label, key)
            self.seed_mode.setItemData(self.seed_mode.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.guidance = QDoubleSpinBox(
            toolTip="How strongly the prompt steers the video (classifier-free guidance; 0: off)"
        )
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
        self.takes = QSpinBox(
            toolTip="Takes: how many versions one Generate makes, with seeds "
            "in a row from the seed shown"
        )
        self.takes.setRange(1, MAX_TAKES)
        self.takes.setPrefix("Takes: ")

        self.source_thumb = QLabel(toolTip="The start image or the source clip's frame")
        self.source_thumb.setFixedSize(64, 48)
        self.source_thumb.setFrameShape(QFrame.Shape.StyledPanel)
        self.source_thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.source_label = ElidedLabel("none")
        self.source_label.setObjectName("dim")
        self.source_note = ElidedLabel("")
        self.source_note.setObjectName("dim")
        self.open_image = QPushButton(
            "Open image…",
            toolTip="Choose a start image (Ctrl+I); "
            "dropping one on the preview or timeline does the same",
        )
        self.crop = QComboBox(toolTip="How an image of another shape fits the frame")
        for key, label in CROP_LABELS:
            self.crop.addItem(label, key)
        # every field may shrink with its dock: the form never gets wider than the panel
        for box in (self.seed, self.guidance, self.temperature, self.frames, self.takes):
            box.setMinimumWidth(48)
        for combo in (self.mode, self.seed_mode, self.crop):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(4)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("primary")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip(
            "The selected clip again with another seed: the Seed field's when it differs from the"
            " clip's, else a random one"
        )
        self.extend_button = QPushButton("Extend")
        self.extend_button.setToolTip(
            "Continue the selected clip from its last frames, with its scene caption"
        )
        self.edit_button = QPushButton("Edit")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("danger")
        self.cancel_button.setToolTip("Stop the running job; its frames are kept (Esc)")

    def _make_layout(self) -> None:
        mode_row = QHBoxLayout()
        mode_row.setSpacing(4)
        mode_row.addWidget(self.mode, 1)
        mode_row.addWidget(self.build)
        mode_row.addWidget(self.history_button)

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 2)
        seed_row.addWidget(self.dice)
        seed_row.addWidget(self.clip_seed)
        seed_row.addWidget(self.seed_mode, 2)
        length_row = QHBoxLayout()
        length_row.addWidget(self.frames, 3)
        length_row.addWidget(self.takes, 2)

        source_row = QHBoxLayout()
        source_row.addWidget(self.source_thumb)
        source_col = QVBoxLayout()
        source_col.setSpacing(2)
        source_col.addWidget(self.source_label)
        source_col.addWidget(self.source_note)
        pick = QHBoxLayout()
        pick.addWidget(self.open_image)
        pick.addWidget(self.crop, 1)
        source_col.addLayout(pick)
        source_row.addLayout(source_col, 1)
        self.source_row = source_row

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setVerticalSpacing(5)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Mode", mode_row)
        form.addRow("Prompt", self.prompt_panel)
        form.addRow("Seed", seed_row)
        sampling_row = QHBoxLayout()
        sampling_row.addWidget(self.guidance, 2)
        sampling_row.addWidget(QLabel("Temp.", toolTip=self.temperature.toolTip()))
        sampling_row.addWidget(self.temperature, 3)
        form.addRow("Guidance", sampling_row)
        form.addRow("Length", length_row)
        form.addRow("Source", source_row)
        self.form_layout = form

        buttons = QGridLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.generate_button, 0, 0, 1, 2)
        buttons.addWidget(self.cancel_button, 0, 2)
        buttons.addWidget(self.regenerate_button, 1, 0)
        buttons.addWidget(self.extend_button, 1, 1)
        buttons.addWidget(self.edit_button, 1, 2)
        for button in (self.generate_button, self.cancel_button, self.regenerate_button,
                       self.extend_button, self.edit_button):  # fmt: skip
            button.setMinimumWidth(0)
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

        # the request form scrolls when the dock is short; the buttons below it always show
        self.form = QWidget()
        form_layout = QVBoxLayout(self.form)
        form_layout.setContentsMargins(8, 6, 8, 2)
        form_layout.setSpacing(2)
        form_layout.addWidget(self.heading)
        form_layout.addWidget(self.subheading)
        form_layout.addWidget(self.scene)
        form_layout.addSpacing(4)
        form_layout.addLayout(form)
        form_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.form)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumHeight(90)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        layout.addWidget(self.scroll, 1)
        buttons.setContentsMargins(8, 4, 8, 0)
        layout.addLayout(buttons)
        self.buttons = buttons

    def _connect(self) -> None:
        d = self.draft
        # view -> model
        self.mode.currentIndexChanged.connect(lambda _i: self._write(mode=self.mode.currentData()))
        self.seed.valueChanged.connect(lambda v: self._write(seed=v))
        self.seed_mode.currentIndexChanged.connect(
            lambda _i: self._write(seed_mode=self.seed_mode.currentData())
        )
        self.guidance.valueChanged.connect(lambda v: self._write(guidance=v))
        self.temperature.valueChanged.connect(lambda v: self._write(temperature=v or None))
        self.frames.valueChanged.connect(lambda v: self._write(frames=v))
        self.frames.editingFinished.connect(self._snap_length)
        self.takes.valueChanged.connect(lambda v: self._write(takes=v))
        self.crop.currentIndexChanged.connect(lambda _i: self._recrop())
        self.dice.clicked.connect(lambda: d.set(seed=random.randrange(2**31)))
        self.clip_seed.clicked.connect(self._use_clip_seed)
        self.open_image.clicked.connect(self.open_image_requested)
        self.generate_button.clicked.connect(self.generate_requested)
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        self.extend_button.clicked.connect(self._extend)
        self.edit_button.clicked.connect(self.edit_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        # model -> view; the models outlive the view, so it disconnects when it is destroyed
        links = [
            (d.events.changed, self._on_draft),
            (self.timeline.events.selection, lambda _id: self._refresh_buttons()),
            (self.timeline.events.changed, self._refresh_buttons),
            (self.jobs.events.updated, lambda _job: self._refresh_buttons()),
            (self.jobs.events.changed, self._refresh_buttons),
        ]
        for event, callback in links:
            event.connect(callback)
        self.destroyed.connect(lambda: [event.disconnect(cb) for event, cb in links])

    # ---- view -> model ---------------------------------------------------------------------------
    def _write(self, **changes) -> None:
        if not self._updating:
            self.draft.set(**changes)

    def _use_clip_seed(self) -> None:
        clip = self.timeline.clip(self.timeline.selected)
        if clip is not None and clip.request is not None:
            self.draft.set(seed=clip.request.seed)

    def _recrop(self) -> None:
        image = self.draft.image
        if not self._updating and image is not None:
            self.draft.set(image=image.recropped(self.crop.currentData()))

    def _extend(self) -> None:
        """Extend continues the clip's scene: unless a prompt was typed for it, the prompt box
        takes the scene caption (an edit's source caption with the edit applied)."""
        d, t = self.draft, self.timeline
        changes: dict = {"mode": "extend"}
        if not (d.typed and d.prompt.strip()):
            changes["prompt"] = scene_caption(t, t.selected)
        d.set(**changes)
        self.extend_requested.emit()

    # ---- model -> view ---------------------------------------------------------------------------
    def _on_draft(self, name: str) -> None:
        was, self._updating = self._updating, True
        try:
            d = self.draft
            if name == "mode":
                self.mode.setCurrentIndex(self.mode.findData(d.mode))
                self.frames.setEnabled(d.mode != "v2v")
                self._length_steps()
                self._refresh_source()
                self._refresh_prompt()
            elif name == "prompt":
                self._refresh_prompt()
            elif name == "seed":
                self.seed.setValue(d.seed)
                self._refresh_buttons()
            elif name == "seed_mode":
                self.seed_mode.setCurrentIndex(self.seed_mode.findData(d.seed_mode))
            elif name == "guidance":
                self.guidance.setValue(d.guidance)
            elif name == "temperature":
                self.temperature.setValue(d.temperature or 0.0)
            elif name == "frames":
                self.frames.setValue(d.frames)
            elif name == "takes":
                self.takes.setValue(d.takes)
            elif name == "demo_grammar":
                self._refresh_prompt()
            elif name in ("image", "clip"):
                if name == "image" and d.image is not None and d.image.original is not None:
                    self.prompt.setFocus()  # a new start image: write its prompt next
                self._refresh_source()
                self._refresh_buttons()
        finally:
            self._updating = was

    def _refresh_prompt(self) -> None:
        self.prompt_panel.show_prompt()
        self._refresh_buttons()

    def preferred_height(self) -> int:
        """The height that shows the whole form and the buttons without scrolling, in every mode
        (the source row, hidden for text to video, is counted)."""
        margins = self.layout().contentsMargins()
        buttons = self.buttons.sizeHint().height()
        spacing = self.layout().spacing()
        form = self.form.sizeHint().height()
        if not self.form_layout.isRowVisible(self.source_row):
            form += self.source_thumb.height() + 2 * self.source_label.sizeHint().height()
        return form + buttons + spacing + margins.top() + margins.bottom()

    def show_model(self, info: ModelInfo | None) -> None:
        """The temperature's special value names the loaded model's default temperature; the
        length steps by the lengths the model's video codec makes; the demo's grammar is checked
        and its word picker offered, the 7B's template shown."""
        self.info = info
        own = f" ({info.temperature:g})" if info is not None else ""
        self.temperature.setSpecialValueText(f"Model default{own}")
        self.prompt_panel.show_model(info)
        self._length_steps()
        self._refresh_buttons()

    def _length_steps(self) -> None:
        """Length counts what the job makes: the clip's frames, or in Extend the new frames (a
        causal codec of step k makes 1 + k*n frames of a clip and k*n new ones after a source)."""
        step = self.info.frame_step if self.info is not None else 1
        extend = self.draft.mode == "extend"
        self.frames.setSingleStep(step)
        self.frames.setMinimum(step if extend and step > 1 else 1)
        self.frames.setSuffix(" new frames" if extend else " frames")
        tip = "Frames to make"
        if step > 1:
            made = "4n new frames" if extend and step == 4 else f"{'' if extend else '1 + '}{step}n"
            tip += f"; this model makes {made} (a typed length snaps to the nearest)"
        self.frames.setToolTip(tip)
        self._snap_length()

    def _snap_length(self) -> None:
        """A typed length the codec cannot make becomes the nearest it can (ties: the longer)."""
        step, n = self.frames.singleStep(), self.frames.value()
        base = 0 if self.draft.mode == "extend" and step > 1 else 1
        snapped = base + step * max((2 * (n - base) + step) // (2 * step), 1 - base)
        if snapped != n:
            self.frames.setValue(snapped)
            if self._updating:  # the view follows the draft: write the snapped length back
                self.draft.set(frames=snapped)

    def _refresh_source(self) -> None:
        d, t = self.draft, self.timeline
        thumb, text, note = None, "none (text only)", ""
        if d.mode == "i2v":
            if d.image is not None:
                thumb = d.image.image
                text = f"Start image: {self._image_name()}"
                note = crop_note(d.image, t.width, t.height)
            else:
                text = "Drop an image on the timeline or preview"
        elif d.mode in ("v2v", "extend"):
            clip = t.clip(d.clip)
            if clip is not None:
                thumb = t.media[clip.media].frames[
                    clip.stop - 1 if d.mode == "extend" else clip.start
                ]
                text = f"Clip: {clip.name or clip.id} ({clip.length} frames)"
            else:
                text = "Select a clip on the timeline"
        self.source_label.setText(text)
        self.source_note.setText(note)
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
        self.form_layout.setRowVisible(self.source_row, d.mode != "t2v")  # first: it shows all
        self.source_note.setVisible(bool(note))
        i2v = d.mode == "i2v"
        self.open_image.setVisible(i2v)
        can_crop = d.image is not None and d.image.original is not None  # a file's, not a clip's
        self.crop.setVisible(i2v and can_crop)
        if can_crop:
            self.crop.setCurrentIndex(self.crop.findData(d.image.crop))

    def _image_name(self) -> str:
        """The start image's file name (a selected clip's comes from its source medium)."""
        name = self.draft.image.name
        clip = self.timeline.clip(self.draft.clip)
        if name == GENERIC_IMAGE_NAME and clip is not None and clip.request is not None:
            source = clip.request.source
            medium = self.timeline.media.get(source.media) if source is not None else None
            if medium is not None and medium.name:
                return medium.name
            return "the clip's first frame"
        return name

    def _refresh_buttons(self) -> None:
        t, d = self.timeline, self.draft
        clip = t.clip(t.selected)
        scene = ""
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
            if r is not None and r.mode == "v2v":
                scene = f"Scene: {scene_caption(t, clip.id) or 'unknown (its source is gone)'}"
        self.scene.setText(scene)
        self.scene.setVisible(bool(scene))
        demo = d.demo_grammar
        mode_problem = prompt_problem(d.mode, d.prompt, demo)
        self.generate_button.setEnabled(mode_problem is None)
        self.generate_button.setToolTip(
            "Queue the request above (Ctrl+Enter)"
            if mode_problem is None
            else f"Not yet: {mode_problem}"
        )
        made = clip is not None and clip.request is not None
        self.prompt_panel.refresh()
        self.regenerate_button.setEnabled(made)
        self.clip_seed.setVisible(made and clip.request.seed != d.seed)
        if made:
            self.clip_seed.setToolTip(f"Use the selected clip's seed ({clip.request.seed})")
        typed_caption = d.typed and d.prompt.strip()
        extend_problem = prompt_problem("extend", d.prompt, demo) if typed_caption else None
        self.extend_button.setEnabled(clip is not None and extend_problem is None)
        edit_problem = prompt_problem("v2v", d.prompt, demo)
        self.edit_button.setEnabled(clip is not None and edit_problem is None)
        self.edit_button.setToolTip(
            "Apply the prompt as an instruction to the selected clip (a new clip)"
            + ("" if edit_problem is None or clip is None else f"; not yet: {edit_problem}")
        )
        running = self.jobs.running()
        self.cancel_button.setEnabled(running is not None and running.state == JobState.RUNNING)
        self._refresh_source()
