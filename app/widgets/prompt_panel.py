"""The inspector's prompt: the box, the one-line verdict under it (the demo's grammar, the length
cap, the 7B's template), the word picker, the project's prompt history and the selected clip's
prompt offered beside a typed one. A view of the Draft, as the inspector is."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.api import ModelInfo

from ..state.draft import Draft
from ..state.prompt_grammar import (
    describe,
    next_words,
    prompt_problem,
    template_preview,
    unfinished,
)
from ..state.prompt_history import PromptHistory
from ..state.request import ClipRequest
from ..state.timeline import Timeline
from ..theme import DIM, ERROR, SUCCESS
from .prompt_builder import PromptBuilder
from .prompt_edit import PromptEdit

PLACEHOLDERS = {
    "t2v": "a small red circle moves left on a black background",
    "i2v": "describe the motion, e.g. a large blue square moves right on a white background",
    "v2v": "an instruction, e.g. remove the red circle",
    "extend": "what happens next (empty: the clip's scene)",
}


class ElidedLabel(QLabel):
    """One line of text, elided on the right to the width it is given (never wider than its
    layout allows); the whole text is its tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._full = text
        self.setToolTip(text)
        super().setText(text)
        self.update()

    def text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(0, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(min(super().sizeHint().width(), 200), super().sizeHint().height())

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        rect = self.contentsRect()
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(rect, int(align), shown)


def tool_button(text: str, tip: str) -> QToolButton:
    button = QToolButton(text=text, toolTip=tip)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    return button


class PromptPanel(QWidget):
    """The prompt box and its verdict line; `build` and `history_button` are placed by the
    inspector (beside Mode). Writes the prompt to the draft as typed; `show_prompt` and
    `refresh` follow the draft."""

    def __init__(self, draft: Draft, timeline: Timeline, history: PromptHistory) -> None:
        super().__init__()
        self.draft, self.timeline, self.history = draft, timeline, history
        self.info: ModelInfo | None = None
        self._updating = False
        self._builder: PromptBuilder | None = None

        self.prompt = PromptEdit()
        self.prompt.setFixedHeight(62)
        self.prompt.setToolTip(
            "The prompt (a caption, or an edit instruction in Edit mode); Ctrl+Space: the words"
            " that may come next (demo); Up / Down at the first / last line: earlier prompts"
        )
        self.verdict = ElidedLabel("")
        self.build = tool_button("Words…", "Build a prompt from the words the demo model knows")
        self.history_button = tool_button(
            "History", "Earlier prompts of this project (also Up / Down)"
        )
        self.history_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.history_menu = QMenu(self.history_button)
        self.history_button.setMenu(self.history_menu)
        self.use_offer = tool_button("Clip's prompt", "")
        self.verdict.setMinimumHeight(self.use_offer.sizeHint().height())  # no jump when shown

        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(self.verdict, 1)
        row.addWidget(self.use_offer)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.prompt)
        layout.addLayout(row)

        self.prompt.textChanged.connect(self._on_typed)
        self.prompt.recall_requested.connect(self.recall)
        self.prompt.refused.connect(lambda text: self._set_verdict(text, ERROR))
        self.build.clicked.connect(self.open_builder)
        self.history_menu.aboutToShow.connect(self.fill_history_menu)
        self.use_offer.clicked.connect(self.take_offer)

    # ---- view -> model ---------------------------------------------------------------------------
    def _on_typed(self) -> None:
        if not self._updating:
            self.history.reset()
            self.draft.type_prompt(self.prompt.toPlainText())

    def put_prompt(self, text: str) -> None:
        """Replace the prompt as the user would (one undo step in the box); the text it held is
        kept in the history."""
        self.history.stash(self.draft.prompt)
        self.prompt.replace_text(text)
        self.prompt.setFocus()

    def recall(self, step: int) -> None:
        """Up / Down: an older (-1) or newer (+1) prompt of this project."""
        text = self.history.recall(step)
        if text is not None:
            self._show(text)
            self.draft.type_prompt(text)
            self.prompt.moveCursor(QTextCursor.MoveOperation.End)

    def take_offer(self) -> None:
        """Use the selected clip's prompt (and mode); the typed one stays in the history."""
        r = self.selected_request()
        if r is not None:
            self.history.stash(self.draft.prompt)
            self.draft.set(mode=r.mode, prompt=r.prompt)

    def selected_request(self) -> ClipRequest | None:
        clip = self.timeline.clip(self.timeline.selected)
        return clip.request if clip is not None else None

    def open_builder(self) -> PromptBuilder:
        """The demo's word picker for the current mode (a caption or an edit instruction)."""
        if self._builder is not None:
            self._builder.close()
        self._builder = PromptBuilder(self.draft.mode, self)
        self._builder.chosen.connect(self.put_prompt)
        self._builder.finished.connect(self._builder.deleteLater)
        self._builder.destroyed.connect(lambda: setattr(self, "_builder", None))
        self._builder.show()
        return self._builder

    def fill_history_menu(self) -> None:
        menu = self.history_menu
        menu.clear()
        entries = self.history.entries()[::-1]
        for text in entries[:30]:
            label = text if len(text) <= 60 else text[:57] + "…"
            action = menu.addAction(label.replace("&", "&&"))
            action.setToolTip(text)
            action.triggered.connect(lambda _=False, t=text: self.put_prompt(t))
        if not entries:
            menu.addAction("No prompts yet in this project").setEnabled(False)
        menu.setToolTipsVisible(True)

    # ---- model -> view ---------------------------------------------------------------------------
    def show_model(self, info: ModelInfo | None) -> None:
        """The demo: grammar check, word picker and completion; the 7B: its template shown."""
        self.info = info
        demo = info is not None and not info.name.startswith("STARFlow-V")
        self.build.setVisible(demo)
        self.prompt.complete_words = self._next_words if demo else None
        self.draft.set(demo_grammar=demo)
        self.refresh()

    def show_prompt(self) -> None:
        """The draft's prompt (and mode) changed."""
        self.prompt.setPlaceholderText(PLACEHOLDERS[self.draft.mode])
        self._show(self.draft.prompt)
        self.refresh()

    def _show(self, text: str) -> None:
        if self.prompt.toPlainText() != text:
            self._updating = True
            try:
                self.prompt.replace_text(text)
            finally:
                self._updating = False

    def _next_words(self, before: str) -> list[str]:
        return next_words(self.draft.mode, before)

    def refresh(self) -> None:
        """The verdict line, and the clip's prompt offered while it is not the one in the box."""
        d = self.draft
        text = describe(d.mode, d.prompt, d.demo_grammar)
        bad = prompt_problem(d.mode, d.prompt, d.demo_grammar) is not None
        if not d.prompt.strip() or (d.demo_grammar and unfinished(d.mode, d.prompt)):
            colour = DIM  # nothing yet, or a prompt still being written
        else:
            colour = ERROR if bad else SUCCESS
        if not d.demo_grammar and self.info is not None and (not bad or not d.prompt.strip()):
            fps, w, h = self.info.fps, self.info.width, self.info.height
            text += " · the model reads: " + template_preview(d.prompt, fps, w, h, d.mode)
        self._set_verdict(text, colour)
        r = self.selected_request()
        offer = r is not None and (r.prompt != d.prompt or r.mode != d.mode)
        self.use_offer.setVisible(offer)
        if offer:
            self.use_offer.setToolTip(
                f"Put the selected clip's prompt in the box: {r.prompt!r} (yours stays in History)"
            )

    def _set_verdict(self, text: str, colour: str) -> None:
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"color: {colour};")
