"""The start screen: shown in the preview's place while no project is open and nothing is made
yet. New project, open a project, the recent projects, and whether to reopen the last project at
start. Accepts dropped files like the preview."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .drops import FileDropMixin


class StartScreen(FileDropMixin, QWidget):
    new_requested = Signal()
    open_requested = Signal()
    recent_requested = Signal(str)  # a project folder
    reopen_changed = Signal(bool)
    files_dropped = Signal(list)  # local paths

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click here leaves the prompt box
        title = QLabel("STARFlow Studio")
        title.setObjectName("heading")
        hint = QLabel(
            "Type a prompt in the Inspector and press Ctrl+Enter, or drop an image or video here."
        )
        hint.setObjectName("dim")
        hint.setWordWrap(True)
        self.new_button = QPushButton("New project")
        self.new_button.setObjectName("primary")
        self.new_button.setToolTip("Start an empty project (Ctrl+N)")
        self.open_button = QPushButton("Open project…")
        self.open_button.setToolTip("Open a project folder (Ctrl+O)")
        self.new_button.clicked.connect(self.new_requested)
        self.open_button.clicked.connect(self.open_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        recent_title = QLabel("Recent projects")
        recent_title.setObjectName("dim")
        self.recent = QListWidget()
        self.recent.setToolTip("Double-click or press Enter to open")
        self.recent.itemActivated.connect(
            lambda item: self.recent_requested.emit(item.data(Qt.ItemDataRole.UserRole))
        )
        self.empty = QLabel("No recent projects yet.")
        self.empty.setObjectName("dim")
        self.reopen = QCheckBox("Reopen the last project at start")
        self.reopen.setToolTip("Next time, open the most recent project instead of this screen")
        self.reopen.toggled.connect(self.reopen_changed)

        self.recent.setMaximumHeight(280)
        column = QVBoxLayout()
        column.addStretch(1)
        column.addWidget(title)
        column.addWidget(hint)
        column.addSpacing(8)
        column.addLayout(buttons)
        column.addSpacing(8)
        column.addWidget(recent_title)
        column.addWidget(self.recent)
        column.addWidget(self.empty)
        column.addWidget(self.reopen)
        column.addStretch(2)
        box = QWidget()
        box.setMaximumWidth(560)
        box.setLayout(column)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(box, 4)
        outer.addStretch(1)

    def set_recent(self, folders: list[Path]) -> None:
        """The recent project folders, the most recent first; missing ones are marked."""
        self.recent.clear()
        for folder in folders:
            missing = "" if folder.exists() else "  (missing)"
            item = QListWidgetItem(f"{folder.name}{missing}\n{folder.parent}")
            item.setData(Qt.ItemDataRole.UserRole, str(folder))
            item.setToolTip(str(folder))
            self.recent.addItem(item)
        self.recent.setVisible(bool(folders))
        self.empty.setVisible(not folders)

    def set_reopen(self, on: bool) -> None:
        self.reopen.blockSignals(True)
        self.reopen.setChecked(on)
        self.reopen.blockSignals(False)
