"""Qt-free editor state: the timeline, the request record, the draft, the job queue, messages,
project files and recovery.

Views (app.widgets) take these models in their constructors, listen to their events and write
back by calling their methods. Nothing here imports Qt: tests/test_layering.py imports every
module with PySide6 blocked.
"""
