"""A non-modal message area: errors and warnings stay until dismissed; notices show in the status
bar. One banner at a time (the newest) with a count and arrows to the others, so a burst of
messages never squeezes the preview. Nothing blocks, so tests read the message log directly."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QStyle,
    QToolButton,
    QWidget,
)

from ..state.messages import Message, MessageLog

ICONS = {
    "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
}
MAX_LINES = 3  # a longer text scrolls inside the banner


class MessageArea(QWidget):
    """Shows one pending message (the newest unless the user steps back with the arrows); its
    height is bounded to MAX_LINES of text whatever the message."""

    def __init__(self, log: MessageLog, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log = log
        self.pending: list[Message] = []
        self.index = -1  # of the message shown in `pending`
        self.icon = QLabel()
        self.icon.setFixedSize(20, 20)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.count = QLabel()
        self.count.setObjectName("dim")
        self.count.setToolTip("Messages waiting: the one shown and how many in all")
        self.older = self._tool("SP_ArrowBack", "Older message", lambda: self.show_index(-1))
        self.newer = self._tool("SP_ArrowForward", "Newer message", lambda: self.show_index(1))
        self.close_button = QToolButton(text="Dismiss", toolTip="Dismiss this message")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)
        self.close_all = QToolButton(text="Dismiss all", toolTip="Dismiss every message")
        self.close_all.setAutoRaise(True)
        self.close_all.clicked.connect(self.dismiss_all)
        self.banner = QFrame()
        outer = QHBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 0)
        outer.addWidget(self.banner)
        row = QHBoxLayout(self.banner)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        self.text_box = QScrollArea()
        self.text_box.setWidget(self.label)
        self.text_box.setWidgetResizable(True)
        self.text_box.setFrameShape(QFrame.Shape.NoFrame)
        self.text_box.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.text_box.setStyleSheet(
            "QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }"
        )
        row.addWidget(self.text_box, 1)
        for w in (self.count, self.older, self.newer, self.close_all, self.close_button):
            row.addWidget(w, 0, Qt.AlignmentFlag.AlignTop)
        line = self.label.fontMetrics().lineSpacing()
        self.max_text_height = MAX_LINES * line + 4
        log.events.added.connect(self._on_added)
        log.events.dismissed.connect(self._on_dismissed)
        self.setVisible(False)

    def _tool(self, icon: str, tip: str, slot) -> QToolButton:
        b = QToolButton(toolTip=tip)
        b.setIcon(self.style().standardIcon(getattr(QStyle.StandardPixmap, icon)))
        b.setAutoRaise(True)
        b.clicked.connect(slot)
        return b

    # ---- the log ---------------------------------------------------------------------------------
    def _on_added(self, message: Message) -> None:
        if message.level == "info":
            return
        # the same message again (a button pressed twice): one entry, moved to the newest
        self.pending = [
            m for m in self.pending if (m.level, m.text) != (message.level, message.text)
        ]
        self.pending.append(message)
        self.index = len(self.pending) - 1
        self._refresh()

    def _on_dismissed(self, message: Message) -> None:
        if message in self.pending:
            i = self.pending.index(message)
            self.pending.remove(message)
            if i < self.index or self.index >= len(self.pending):
                self.index -= 1
            self.index = max(self.index, 0) if self.pending else -1
            self._refresh()

    # ---- actions ---------------------------------------------------------------------------------
    @property
    def current(self) -> Message | None:
        return self.pending[self.index] if self.pending else None

    def show_index(self, delta: int) -> None:
        if self.pending:
            self.index = max(0, min(self.index + delta, len(self.pending) - 1))
            self._refresh()

    def dismiss(self) -> None:
        if self.current is not None:
            self.log.dismiss(self.current)

    def dismiss_all(self) -> None:
        for message in list(self.pending):
            self.log.dismiss(message)
        self.pending.clear()
        self.index = -1
        self._refresh()

    def _refresh(self) -> None:
        message = self.current
        self.setVisible(message is not None)
        if message is None:
            return
        self.banner.setObjectName(f"message_{message.level}")
        self.banner.style().unpolish(self.banner)
        self.banner.style().polish(self.banner)
        icon = self.style().standardIcon(ICONS[message.level])
        self.icon.setPixmap(icon.pixmap(18, 18))
        self.icon.setToolTip(message.level)
        self.label.setText(message.text)
        self.text_box.verticalScrollBar().setValue(0)
        self._fit_text()
        n = len(self.pending)
        self.count.setText(f"{self.index + 1} of {n}")
        for w in (self.count, self.older, self.newer, self.close_all):
            w.setVisible(n > 1)
        self.older.setEnabled(self.index > 0)
        self.newer.setEnabled(self.index < n - 1)

    def _fit_text(self) -> None:
        """The text box as tall as the text, up to MAX_LINES (then it scrolls)."""
        width = max(self.text_box.width() - 14, 50)  # room for the scroll bar
        self.text_box.setFixedHeight(min(self.label.heightForWidth(width), self.max_text_height))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.current is not None:
            self._fit_text()

    def texts(self) -> list[str]:
        """Every message waiting to be read, oldest first."""
        return [m.text for m in self.pending]
