"""STARFlow Studio desktop editor (PySide6)."""
