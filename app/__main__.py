"""`python -m app` / `starflow-studio`: the editor on the built-in demo model (CUDA when present).

starflow-studio [PROJECT_FOLDER] [--model PATH] [--device auto|cpu|cuda] [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QDialog

from .settings import Settings, set_application_names
from .theme import apply_dark_theme

log = logging.getLogger("app")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="starflow-studio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "project",
        nargs="?",
        help="project folder to open (one not made yet, or empty: a new project saved there)",
    )
    ap.add_argument(
        "--model", help="model file (default: the setting, else the built-in demo model)"
    )
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"))
    ap.add_argument("-v", "--verbose", action="store_true")
    args, _qt_args = ap.parse_known_args(argv)
    return args


def create_app(argv: list[str]) -> QApplication:
    """Application names first (QSettings needs them), high-DPI policy, dark theme."""
    set_application_names()
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QApplication.instance() or QApplication(argv)
    apply_dark_theme(app)
    return app


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    args = parse_args(argv[1:])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    app = create_app(argv)
    from .main_window import MainWindow
    from .studio import Studio

    settings = Settings()
    if args.model is not None:
        settings.model = args.model
    if args.device:
        settings.device = args.device
    if args.precision:
        settings.precision = args.precision
    studio = Studio(settings)
    window = MainWindow(studio)
    window.show()
    _quit_on_signals(app, window)
    studio.start(args.project)
    code = 0 if studio.project.ending else app.exec()  # a signal during a start-up question
    window.shutdown()
    return code


def _quit_on_signals(app: QApplication, window) -> None:
    """SIGTERM and SIGHUP (a logout, `kill`): unsaved work goes into the autosave, offered at the
    next start, the project's lock is given up, and the editor quits with status 0."""

    def stop(signum: int, _frame) -> None:
        log.warning(
            "%s: unsaved work goes into the autosave; quitting", signal.Signals(signum).name
        )
        name = signal.Signals(signum).name
        QTimer.singleShot(0, app, lambda: quit_keeping_work(app, window, name))

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
    wake = QTimer(app)  # Python runs signal handlers only between Qt events: wake it up
    wake.timeout.connect(lambda: None)
    wake.start(250)


def quit_keeping_work(app: QApplication, window, reason: str = "") -> None:
    for _ in range(10):  # a question open now is closed unanswered (it would outlive quit())
        box = QApplication.activeModalWidget()
        if box is None:
            break
        box.reject() if isinstance(box, QDialog) else box.close()
    kept = window.studio.project.keep_for_restart(reason)
    window.shutdown(clean=not kept)
    window.close()  # shut down already: closes without a question, also inside a dialog's loop
    app.quit()


if __name__ == "__main__":
    sys.exit(main())
