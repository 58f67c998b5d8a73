"""Help > Keyboard shortcuts: every key of the window's menus, read from the menus themselves (so
the sheet cannot go stale), plus the keys that belong to no menu; a filter box narrows it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLineEdit,
    QMenu,
    QMenuBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

EXTRA_KEYS = [  # keys and gestures that belong to no menu: (where, keys, what they do)
    ("Preview", "Double-click", "Fullscreen preview (Esc leaves)"),
    ("Preview", "Right-click", "Playback, zoom, copy and export the frame"),
    ("Prompt", "Ctrl+Enter", "Generate from the prompt being typed"),
    ("Anywhere", "Click outside a text field", "The playback keys work again"),
]


NAMED_KEYS = {
    "Space",
    "Left",
    "Right",
    "Up",
    "Down",
    "Home",
    "End",
    "Del",
    "Esc",
    "Return",
    "Enter",
}


def typed(key: str) -> bool:
    """A binding a user types: with a modifier, one character, F1-F12 or a named key (not the
    platform's extra keys that Qt's standard bindings list, such as F14 or a keyboard's Undo)."""
    if "+" in key or len(key) == 1 or key in NAMED_KEYS:
        return True
    return key.startswith("F") and key[1:].isdigit() and int(key[1:]) <= 12


def menu_keys(menubar: QMenuBar) -> list[tuple[str, str, str]]:
    """(menu, keys, action text) for every action with a shortcut, submenus included."""
    rows: list[tuple[str, str, str]] = []

    def walk(menu: QMenu, group: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), group)
            elif action.shortcuts():
                native = [
                    k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()
                ]
                native = [k for k in native if k]  # a standard key this platform lacks
                if not native:
                    continue
                keys = ", ".join(k for k in native if typed(k)) or native[0]
                text = action.text().replace("&&", "\0").replace("&", "")
                for stable in ("Undo", "Redo"):  # their text names the step they would undo
                    text = stable if text.startswith(stable) else text
                rows.append((group, keys, text))

    for top in menubar.actions():
        if top.menu() is not None:
            walk(top.menu(), top.text().replace("&", ""))
    return [(g, k, t.replace("\0", "&")) for g, k, t in rows]


class ShortcutSheet(QDialog):
    def __init__(
        self,
        menubar: QMenuBar,
        extra: list[tuple[str, str, str]] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts — STARFlow Studio")
        self.rows = menu_keys(menubar) + list(extra)
        self.filter = QLineEdit(placeholderText="Filter: a key or a word")
        self.filter.setToolTip("Show only the rows containing this text")
        self.filter.setClearButtonEnabled(True)
        self.table = QTableWidget(len(self.rows), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "Does"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        for r, row in enumerate(self.rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.filter.textChanged.connect(self.apply_filter)
        self.resize(620, 560)
        if parent is not None:  # never taller than the window it helps
            self.resize(620, min(560, max(320, parent.height() - 80)))

    def apply_filter(self, text: str) -> None:
        words = text.lower().split()
        for r, row in enumerate(self.rows):
            line = " ".join(row).lower()
            self.table.setRowHidden(r, not all(w in line for w in words))

    def visible_rows(self) -> list[tuple[str, str, str]]:
        return [row for r, row in enumerate(self.rows) if not self.table.isRowHidden(r)]

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.reject()
        else:
            super().keyPressEvent(event)
