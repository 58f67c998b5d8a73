"""STARFlow Studio desktop editor (PySide6)."""

from . import _qtfix

_qtfix.guard()
