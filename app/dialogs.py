"""Every question the editor asks the user, behind one injectable object.

The studio never opens a dialog itself: it calls these methods, so tests pass a scripted
`Dialogs` that answers at once (no modal loop, nothing blocks).
"""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp)"
VIDEO_FILTER = "Videos (*.mp4 *.mov *.webm *.gif *.mkv *.m4v)"
MODEL_FILTER = "Models (*.json *.safetensors *.pth)"


class Dialogs:
    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent

    def open_image(self, start: str) -> str | None:
        return (
            QFileDialog.getOpenFileName(self.parent, "Open start image", start, IMAGE_FILTER)[0]
            or None
        )

    def open_video(self, start: str) -> str | None:
        return (
            QFileDialog.getOpenFileName(self.parent, "Import video", start, VIDEO_FILTER)[0] or None
        )

    def open_model(self, start: str) -> str | None:
        return (
            QFileDialog.getOpenFileName(self.parent, "Open model", start, MODEL_FILTER)[0] or None
        )

    def open_project(self, start: str) -> str | None:
        return QFileDialog.getExistingDirectory(self.parent, "Open project folder", start) or None

    def save_project(self, start: str) -> str | None:
        """A (new or empty) folder to save the project in."""
        path = QFileDialog.getSaveFileName(self.parent, "Save project as folder", start)[0]
        return path or None

    def export_video(self, start: str) -> str | None:
        return (
            QFileDialog.getSaveFileName(self.parent, "Export MP4", start, "MP4 video (*.mp4)")[0]
            or None
        )

    def export_frame(self, start: str) -> str | None:
        return (
            QFileDialog.getSaveFileName(self.parent, "Export frame", start, "PNG image (*.png)")[0]
            or None
        )

    def clip_name(self, current: str) -> str | None:
        """A new name for a clip (None: cancelled)."""
        text, ok = QInputDialog.getText(
            self.parent, "Rename clip", "Clip name:", QLineEdit.EchoMode.Normal, current
        )
        return text if ok else None

    def ask(self, title: str, text: str) -> bool:
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        return (
            QMessageBox.question(self.parent, title, text, buttons)
            == QMessageBox.StandardButton.Yes
        )

    def confirm_close(self, text: str) -> str:
        """'save', 'discard' or 'cancel'."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes", text, parent=self.parent)
        box.setStandardButtons(
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        answer = box.exec()
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(QMessageBox.StandardButton(answer), "cancel")
