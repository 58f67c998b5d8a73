"""The dark theme: Fusion style, a dark palette and a small style sheet. A style sheet that sets a
spin box's or check box's border takes over drawing its parts, so their arrows and ticks are
drawn from the small SVG files in app/icons."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BG = "#1b1c1f"
PANEL = "#24262a"
RAISED = "#2e3035"
BORDER = "#3a3d43"
TEXT = "#e3e5e8"
DIM = "#9aa0a8"
ACCENT = "#4f8cff"
ACCENT_DARK = "#2f5fbf"
PLAYHEAD = "#ff5a4f"
ERROR = "#e5534b"
WARNING = "#d29922"
SUCCESS = "#3fb950"
ICONS = Path(__file__).with_name("icons").as_posix()

STYLE = f"""
QMainWindow, QDialog {{ background: {BG}; }}
QWidget {{ color: {TEXT}; font-size: 10pt; }}
QDockWidget {{ titlebar-close-icon: none; }}
QDockWidget::title {{ background: {PANEL}; padding: 4px 8px; border-bottom: 1px solid {BORDER};
    font-weight: 600; color: {DIM}; text-transform: uppercase; }}
QMenuBar {{ background: {PANEL}; border-bottom: 1px solid {BORDER}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: {ACCENT_DARK}; }}
QMenu {{ background: {RAISED}; border: 1px solid {BORDER}; padding: 4px; }}
QMenu::item {{ padding: 4px 24px 4px 20px; border-radius: 4px; }}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; color: {DIM}; }}
QStatusBar QLabel {{ color: {DIM}; padding: 0 8px; }}
QPushButton, QToolButton {{ background: {RAISED}; border: 1px solid {BORDER}; border-radius: 5px;
    padding: 5px 12px; }}
QToolButton {{ padding: 4px 8px; }}
QPushButton:hover, QToolButton:hover {{ border-color: {ACCENT}; }}
QPushButton:pressed, QToolButton:pressed, QToolButton:checked {{ background: {ACCENT_DARK}; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5c6169; border-color: #30333a; }}
QPushButton#primary {{ background: {ACCENT}; border-color: {ACCENT}; color: white; font-weight: 600; }}
QPushButton#primary:hover {{ background: #6a9dff; }}
QPushButton#danger:enabled {{ border-color: {ERROR}; color: #ffb4ae; }}
QLineEdit, QPlainTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{ background: {BG};
    border: 1px solid {BORDER}; border-radius: 5px; padding: 4px 6px; selection-background-color: {ACCENT_DARK}; }}
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus {{
    border-color: {ACCENT}; }}
QComboBox QAbstractItemView {{ background: {RAISED}; border: 1px solid {BORDER}; }}
QTableWidget, QListWidget {{ background: {BG}; border: 1px solid {BORDER}; border-radius: 5px;
    gridline-color: transparent; alternate-background-color: {PANEL}; }}
QTableWidget::item:selected, QListWidget::item:selected {{ background: {ACCENT_DARK}; }}
QListWidget::item {{ padding: 5px 6px; border-radius: 4px; }}
QListWidget::item:hover {{ background: {RAISED}; }}
QHeaderView::section {{ background: {PANEL}; color: {DIM}; border: none; border-bottom: 1px solid {BORDER};
    padding: 3px 6px; }}
QProgressBar {{ background: {BG}; border: 1px solid {BORDER}; border-radius: 4px; text-align: center;
    height: 14px; color: {TEXT}; font-size: 8pt; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QScrollBar:horizontal {{ background: {BG}; height: 12px; }}
QScrollBar:vertical {{ background: {BG}; width: 12px; }}
QScrollBar::handle {{ background: {BORDER}; border-radius: 5px; min-width: 24px; min-height: 24px; margin: 2px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QSplitter::handle {{ background: {BORDER}; }}
QLabel#heading {{ font-size: 11pt; font-weight: 600; }}
QLabel#dim {{ color: {DIM}; }}
QFrame#card {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}
QFrame#message_error {{ background: #3b1f1e; border: 1px solid {ERROR}; border-radius: 6px; }}
QFrame#message_warning {{ background: #3a2f16; border: 1px solid {WARNING}; border-radius: 6px; }}
QFrame#message_info {{ background: #1c2b40; border: 1px solid {ACCENT_DARK}; border-radius: 6px; }}
QPushButton#primary:disabled {{ background: {RAISED}; border-color: {BORDER}; color: #6b717b;
    font-weight: 600; }}
QSpinBox, QDoubleSpinBox {{ padding-right: 22px; }}
QSpinBox::up-button, QDoubleSpinBox::up-button, QSpinBox::down-button, QDoubleSpinBox::down-button
    {{ subcontrol-origin: border; width: 20px; background: {RAISED}; border-left: 1px solid {BORDER}; }}
QSpinBox::up-button, QDoubleSpinBox::up-button {{ subcontrol-position: top right;
    border-top-right-radius: 5px; border-bottom: 1px solid {BORDER}; }}
QSpinBox::down-button, QDoubleSpinBox::down-button {{ subcontrol-position: bottom right;
    border-bottom-right-radius: 5px; }}
QSpinBox::up-button:hover, QDoubleSpinBox::up-button:hover, QSpinBox::down-button:hover,
    QDoubleSpinBox::down-button:hover {{ background: {ACCENT_DARK}; }}
QSpinBox::up-arrow, QDoubleSpinBox::up-arrow {{ image: url({ICONS}/up.svg); width: 9px; height: 6px; }}
QSpinBox::down-arrow, QDoubleSpinBox::down-arrow {{ image: url({ICONS}/down.svg); width: 9px;
    height: 6px; }}
QSpinBox::up-arrow:disabled, QDoubleSpinBox::up-arrow:disabled, QSpinBox::up-arrow:off,
    QDoubleSpinBox::up-arrow:off {{ image: url({ICONS}/up_disabled.svg); }}
QSpinBox::down-arrow:disabled, QDoubleSpinBox::down-arrow:disabled, QSpinBox::down-arrow:off,
    QDoubleSpinBox::down-arrow:off {{ image: url({ICONS}/down_disabled.svg); }}
QComboBox::drop-down {{ border: none; width: 20px; }}
QComboBox::down-arrow {{ image: url({ICONS}/down.svg); width: 9px; height: 6px; }}
QCheckBox::indicator {{ width: 14px; height: 14px; border: 1px solid #6b717b; border-radius: 3px;
    background: {BG}; }}
QCheckBox::indicator:hover {{ border-color: {ACCENT}; }}
QCheckBox::indicator:checked {{ background: {ACCENT_DARK}; border-color: {ACCENT};
    image: url({ICONS}/check.svg); }}
QCheckBox::indicator:disabled {{ border-color: #3a3d43; }}
QCheckBox:disabled {{ color: #5c6169; }}
QToolTip {{ background: {RAISED}; color: {TEXT}; border: 1px solid {BORDER}; padding: 4px; }}
"""


def dark_palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: BG,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BG,
        QPalette.ColorRole.AlternateBase: PANEL,
        QPalette.ColorRole.ToolTipBase: RAISED,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: RAISED,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT_DARK,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: DIM,
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5c6169"))
    return p


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(STYLE)
