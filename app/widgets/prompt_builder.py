"""The demo's prompt builder: lists of the words the Shapes world knows, put together into a
caption (one or two objects, a background) or an edit instruction; only valid text can be used."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ..state.prompt_grammar import VOCABULARY, is_instruction, prompt_problem

V = VOCABULARY
VERBS = (
    ("add", "add an object"),
    ("remove", "remove an object"),
    ("make", "recolour an object"),
    ("change", "change the background"),
)


def _combo(items, tip: str, first: str | None = None) -> QComboBox:
    box = QComboBox()
    if first is not None:
        box.addItem(first, "")
    for item in items:
        box.addItem(item, item)
    box.setToolTip(tip)
    return box


class _ObjectRow(QWidget):
    """size, colour, shape and (optionally) motion of one object."""

    def __init__(self, motion: bool = True, size: bool = True) -> None:
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.size = _combo(V.sizes, "Size (large when not given)", "(size)")
        self.colour = _combo(V.colours, "Colour")
        self.shape = _combo(V.shapes, "Shape")
        self.motion = _combo(V.motions, "How it moves")
        for box, shown in ((self.size, size), (self.colour, True), (self.shape, True)):
            box.setVisible(shown)
            row.addWidget(box)
        self.motion.setVisible(motion)
        row.addWidget(self.motion)

    def combos(self) -> list[QComboBox]:
        return [self.size, self.colour, self.shape, self.motion]

    def noun(self, article: str = "a") -> str:
        size = self.size.currentData() if self.size.isVisible() else ""
        words = [article, size, self.colour.currentData(), self.shape.currentData()]
        return " ".join(w for w in words if w)


class PromptBuilder(QDialog):
    """Builds a caption (`instruction=False`) or an edit instruction from the demo's words."""

    chosen = Signal(str)

    def __init__(self, mode: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = mode
        self.instruction = is_instruction(mode)
        self.setWindowTitle("Build an edit instruction" if self.instruction else "Build a caption")
        form = QFormLayout()
        self.first = _ObjectRow()
        self.second = _ObjectRow()
        self.two = QCheckBox("and a second object")
        self.two.setToolTip("A caption names one or two objects, of different colours")
        self.background = _combo(V.backgrounds, "The plain background colour")
        self.verb = QComboBox()
        for key, label in VERBS:
            self.verb.addItem(label, key)
        self.verb.setToolTip("What the edit does to the clip")
        self.target = _ObjectRow(motion=False, size=False)
        self.new_colour = _combo(V.colours, "The object's new colour")
        if self.instruction:
            form.addRow("Edit", self.verb)
            form.addRow("Object", self.first)
            form.addRow("Which", self.target)
            form.addRow("New colour", self.new_colour)
            form.addRow("Background", self.background)
        else:
            self.second.colour.setCurrentIndex(1)
            form.addRow("Object", self.first)
            form.addRow("", self.two)
            form.addRow("Second", self.second)
            form.addRow("Background", self.background)
        self.form = form
        self.preview = QLabel()
        self.preview.setWordWrap(True)
        self.preview.setObjectName("heading")
        self.verdict = QLabel()
        self.verdict.setObjectName("dim")
        self.verdict.setWordWrap(True)
        words = QLabel(V.summary())
        words.setObjectName("dim")
        words.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Close
        )
        self.use = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.use.setText("Use this prompt")
        self.use.setToolTip(
            "Put the text above in the prompt box (the text there stays in History)"
        )
        buttons.accepted.connect(self._use)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview)
        layout.addWidget(self.verdict)
        layout.addWidget(QLabel("The demo model knows these words:"))
        layout.addWidget(words)
        layout.addWidget(buttons)
        combos = [self.background, self.verb, self.new_colour]
        combos += self.first.combos() + self.second.combos() + self.target.combos()
        for box in combos:
            box.currentIndexChanged.connect(self._update)
        self.two.toggled.connect(self._update)
        self._update()

    def text(self) -> str:
        if not self.instruction:
            parts = [f"{self.first.noun()} {self.first.motion.currentData()}"]
            if self.two.isChecked():
                parts.append(f"{self.second.noun()} {self.second.motion.currentData()}")
            return f"{' and '.join(parts)} on a {self.background.currentData()} background"
        verb = self.verb.currentData()
        if verb == "add":
            return f"add {self.first.noun()} that {self.first.motion.currentData()}"
        if verb == "remove":
            return f"remove {self.target.noun('the')}"
        if verb == "make":
            return f"make {self.target.noun('the')} {self.new_colour.currentData()}"
        return f"change the background to {self.background.currentData()}"

    def _update(self) -> None:
        if self.instruction:
            verb = self.verb.currentData()
            for widget, shown in (
                (self.first, verb == "add"),
                (self.target, verb in ("remove", "make")),
                (self.new_colour, verb == "make"),
                (self.background, verb == "change"),
            ):
                self.form.setRowVisible(widget, shown)
        else:
            self.form.setRowVisible(self.second, self.two.isChecked())
        text = self.text()
        problem = prompt_problem(self.mode, text, demo=True)
        self.preview.setText(text)
        self.verdict.setText(problem or "Valid: the demo model knows this prompt")
        self.use.setEnabled(problem is None)

    def _use(self) -> None:
        if self.use.isEnabled():
            self.chosen.emit(self.text())
            self.accept()
