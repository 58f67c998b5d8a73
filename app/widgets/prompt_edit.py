"""The prompt box: plain text with a length cap applied as text arrives (a huge paste is cut
before it reaches the document, so the window never stalls), and Up / Down at its first / last
line to recall earlier prompts."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from ..state.prompt_grammar import MAX_PROMPT_CHARS


class PromptEdit(QPlainTextEdit):
    recall_requested = Signal(int)  # -1: an older prompt, +1: a newer one
    refused = Signal(str)  # why typed or pasted text was cut

    def __init__(self, parent: QWidget | None = None, max_chars: int = MAX_PROMPT_CHARS) -> None:
        super().__init__(parent)
        self.max_chars = max_chars
        self.setTabChangesFocus(True)

    def room(self) -> int:
        """Characters that may still be added (what is selected will be replaced)."""
        cursor = self.textCursor()
        selected = cursor.selectionEnd() - cursor.selectionStart()
        return self.max_chars - (self.document().characterCount() - 1 - selected)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 - Qt override
        if not source.hasText():
            return
        room = max(self.room(), 0)
        text = source.text()
        if len(text) <= room:
            self.textCursor().insertText(text)
            self.ensureCursorVisible()
            return
        if room:
            self.textCursor().insertText(text[:room])
            self.ensureCursorVisible()
        self.refused.emit(
            f"Pasted text cut to {room:,} of {len(text):,} characters: "
            f"a prompt has at most {self.max_chars:,}"
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        cursor = self.textCursor()
        plain = event.modifiers() in (
            Qt.KeyboardModifier.NoModifier,
            Qt.KeyboardModifier.KeypadModifier,
        )
        if plain and event.key() == Qt.Key.Key_Up and not self._moves(cursor, up=True):
            self.recall_requested.emit(-1)
            return
        if plain and event.key() == Qt.Key.Key_Down and not self._moves(cursor, up=False):
            self.recall_requested.emit(1)
            return
        text = event.text()
        if text and text.isprintable() and len(text) > self.room():
            self.refused.emit(f"A prompt has at most {self.max_chars:,} characters")
            return
        super().keyPressEvent(event)

    def _moves(self, cursor: QTextCursor, up: bool) -> bool:
        """Whether Up / Down would move the cursor to another line of the box."""
        probe = QTextCursor(cursor)
        op = QTextCursor.MoveOperation.Up if up else QTextCursor.MoveOperation.Down
        return probe.movePosition(op)

    def replace_text(self, text: str) -> None:
        """Replace the whole text as one step the box's own undo (Ctrl+Z) reverts."""
        if text == self.toPlainText():
            return
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text[: self.max_chars])
        cursor.endEditBlock()
        self.setTextCursor(cursor)
