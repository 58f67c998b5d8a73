"""The prompt box: plain text with a length cap applied as text arrives (a huge paste is cut
before it reaches the document, so the window never stalls), Up / Down at its first / last line
to recall earlier prompts, and Ctrl+Space to complete the word at the cursor from the words that
may come next (when a completion function is set)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QMimeData, QStringListModel, Qt, Signal
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import QCompleter, QPlainTextEdit, QWidget

from ..state.prompt_grammar import MAX_PROMPT_CHARS


class PromptEdit(QPlainTextEdit):
    recall_requested = Signal(int)  # -1: an older prompt, +1: a newer one
    refused = Signal(str)  # why typed or pasted text was cut

    def __init__(self, parent: QWidget | None = None, max_chars: int = MAX_PROMPT_CHARS) -> None:
        super().__init__(parent)
        self.max_chars = max_chars
        self.setTabChangesFocus(True)
        # the text before the cursor (whole words) -> the words that may come next
        self.complete_words: Callable[[str], list[str]] | None = None
        self.completer = QCompleter(self)
        self.completer.setWidget(self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setModel(QStringListModel(self.completer))
        self.completer.activated.connect(self._complete)

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

    def show_completions(self) -> bool:
        """Pop up the words that may come next at the cursor; False when there are none."""
        if self.complete_words is None:
            return False
        before = self.toPlainText()[: self.textCursor().position()]
        head, _, partial = before.rpartition(" ")
        words = [w for w in self.complete_words(head) if w.startswith(partial.lower())]
        if not words:
            return False
        self.completer.model().setStringList(words)
        self.completer.setCompletionPrefix(partial)
        rect = self.cursorRect()
        rect.setWidth(self.completer.popup().sizeHintForColumn(0) + 24)
        self.completer.complete(rect)
        popup = self.completer.popup()
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))  # Enter takes it
        return True

    def _complete(self, word: str) -> None:
        """Replace the partial word at the cursor with `word` and a space, then offer the next."""
        cursor = self.textCursor()
        partial = self.completer.completionPrefix()
        cursor.movePosition(
            QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, len(partial)
        )
        cursor.insertText(word + " ")
        self.setTextCursor(cursor)
        self.show_completions()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        popup = self.completer.popup()
        if popup.isVisible() and event.key() in (
            Qt.Key.Key_Return,
            Qt.Key.Key_Enter,
            Qt.Key.Key_Escape,
            Qt.Key.Key_Tab,
        ):
            event.ignore()  # the completer's popup takes these
            return
        if (
            event.key() == Qt.Key.Key_Space
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self.show_completions()
            return
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
