"""The preview's canvas (one frame, scaled to fit or at 1:1, with a label) and the fullscreen window
that shows it alone on a screen."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QImage, QKeySequence, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from .. import theme
from .drops import FileDropMixin

FIT = 0  # canvas zoom: scale to fit; otherwise device pixels per frame pixel
HINT = "Type a prompt and press Ctrl+Enter\nor drop an image or video here"


class PreviewCanvas(FileDropMixin, QWidget):
    """Paints one QImage scaled to fit, or at 1:1 (nearest neighbour for small frames); one repaint
    per event-loop pass however many frames arrive. Takes focus when clicked, so the playback keys
    leave the prompt box."""

    files_dropped = Signal(list)  # local paths
    menu_requested = Signal(QPoint)  # global position
    double_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.overlay = ""
        self.live = False  # the overlay's red dot
        self.zoom = FIT
        self.paints = 0
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setToolTip("Preview: click, then Space / J K L / Left Right; right-click for more")

    def show_image(self, image: QImage | None, overlay: str = "", live: bool = False) -> None:
        self.image, self.overlay, self.live = image, overlay, live
        self.update()  # coalesced by Qt: several frames per pass paint once

    def set_zoom(self, zoom: int) -> None:
        self.zoom = zoom
        self.update()

    def target_rect(self) -> QRectF:
        if self.image is None or self.image.isNull():
            return QRectF()
        if self.zoom == FIT:
            w, h = self.width() - 16, self.height() - 16
            scale = min(w / self.image.width(), h / self.image.height())
        else:  # whole device pixels per frame pixel
            scale = self.zoom / self.devicePixelRatioF()
        tw, th = self.image.width() * scale, self.image.height() * scale
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def mousePressEvent(self, event) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        self.double_clicked.emit()
        event.accept()

    def contextMenuEvent(self, event) -> None:
        self.menu_requested.emit(event.globalPos())
        event.accept()

    def paintEvent(self, _event) -> None:
        self.paints += 1
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111214"))
        if self.image is None or self.image.isNull():
            p.setPen(QColor(theme.DIM))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, HINT)
            return
        rect = self.target_rect()
        smooth = rect.width() < self.image.width() * 2 and self.zoom == FIT
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        p.drawImage(rect, self.image)
        p.setPen(QPen(QColor(theme.BORDER), 1))
        p.drawRect(rect.adjusted(-1, -1, 0, 0))
        if self.overlay:
            self._paint_overlay(p, rect)
        if self.hasFocus():  # the playback keys go here: a thin accent line along the bottom
            p.fillRect(0, self.height() - 2, self.width(), 2, QColor(theme.ACCENT_DARK))

    def focusInEvent(self, event) -> None:
        super().focusInEvent(event)
        self.update()

    def focusOutEvent(self, event) -> None:
        super().focusOutEvent(event)
        self.update()

    def _paint_overlay(self, p: QPainter, rect: QRectF) -> None:
        font = QFont(self.font())
        font.setBold(True)
        p.setFont(font)
        fm = p.fontMetrics()
        dot = 14 if self.live else 0
        box = QRect(0, 0, fm.horizontalAdvance(self.overlay) + 20 + dot, fm.height() + 10)
        top_left = rect.topLeft().toPoint() + QPoint(10, 10)
        box.moveTopLeft(QPoint(max(top_left.x(), 6), max(top_left.y(), 6)))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 170))
        p.drawRoundedRect(box, 5, 5)
        if self.live:
            p.setBrush(QColor(theme.PLAYHEAD))
            p.drawEllipse(box.left() + 8, box.center().y() - 3, 7, 7)
        p.setPen(QColor("white"))
        p.drawText(box.adjusted(dot, 0, 0, 0), Qt.AlignmentFlag.AlignCenter, self.overlay)


class FullscreenPreview(QWidget):
    """The preview canvas alone on a whole screen; Esc, F11 or a double click leaves. The preview's
    playback actions are added here too, so their keys work while it is shown."""

    closed = Signal()

    def __init__(self, actions: list[QAction]) -> None:
        super().__init__(None, Qt.WindowType.Window)
        self.setWindowTitle("Preview — STARFlow Studio")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.canvas = PreviewCanvas(self)
        self.canvas.double_clicked.connect(self.close)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.addActions(actions)
        leave = QAction("Leave fullscreen", self)
        leave.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        leave.triggered.connect(self.close)
        self.addAction(leave)

    def closeEvent(self, event) -> None:
        self.closed.emit()
        super().closeEvent(event)
