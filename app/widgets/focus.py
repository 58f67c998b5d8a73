"""Keyboard focus in the main window: which widgets keep the keys for typing, and a click anywhere
else that takes the focus from a text field, so window-wide keys (playback) work again."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QMenuBar,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)


def is_text_field(widget: QWidget | None) -> bool:
    """Widgets that keep Space, the arrows and letters for typing (no playback keys there)."""
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QPlainTextEdit, QTextEdit, QAbstractSpinBox))


class ClickFocus(QObject):
    """A click anywhere in the window that takes no keyboard focus itself (a label, a tool button,
    a dock's title) takes it from a text field to `sink`, so the playback keys work again.
    Presses inside the text field (its scroll bars), on another text field or on the menu bar
    leave the focus alone."""

    def __init__(self, window: QWidget, sink: QWidget) -> None:
        super().__init__(window)
        self.window, self.sink = window, sink

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.MouseButtonPress and isinstance(obj, QWidget):
            focus = QApplication.focusWidget()
            if (
                is_text_field(focus)
                and obj.window() is self.window
                and obj is not focus
                and not focus.isAncestorOf(obj)
                and not is_text_field(obj)
                and not isinstance(obj, QMenuBar)
            ):
                if self.sink.isVisible():
                    self.sink.setFocus(Qt.FocusReason.MouseFocusReason)
                else:  # the preview is hidden (start screen): the window keeps the keys
                    focus.clearFocus()
        return False
