"""A non-modal message area: errors and warnings stay as banners until dismissed; notices
show in the status bar. Nothing blocks, so tests read the message log directly."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ..state.messages import Message, MessageLog

VISIBLE = 3


class MessageBanner(QFrame):
    def __init__(self, message: Message, on_close, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self.setObjectName(f"message_{message.level}")
        icon = {"error": "⛔", "warning": "⚠", "info": "ℹ"}[message.level]
        self.label = QLabel(f"{icon}  {message.text}")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(text="✕", toolTip="Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(lambda: on_close(message))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)


class MessageArea(QWidget):
    def __init__(self, log: MessageLog, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log = log
        self.banners: list[MessageBanner] = []
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(8, 8, 8, 0)
        self.layout_.setSpacing(4)
        log.events.added.connect(self._on_added)
        log.events.dismissed.connect(self._on_dismissed)
        self.setVisible(False)

    def _on_added(self, message: Message) -> None:
        if message.level == "info":
            return
        banner = MessageBanner(message, self.log.dismiss, self)
        self.banners.append(banner)
        self.layout_.addWidget(banner)
        while len(self.banners) > VISIBLE:
            self._drop(self.banners[0])
        self.setVisible(True)

    def _on_dismissed(self, message: Message) -> None:
        for banner in [b for b in self.banners if b.message is message]:
            self._drop(banner)

    def _drop(self, banner: MessageBanner) -> None:
        self.banners.remove(banner)
        banner.setParent(None)
        banner.deleteLater()
        self.setVisible(bool(self.banners))

    def texts(self) -> list[str]:
        return [b.message.text for b in self.banners]
