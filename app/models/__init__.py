"""Qt-free editor state: the timeline, the job queue, messages, project files and recovery.

Views (app.widgets) take these models in their constructors, listen to their events and write
back by calling their methods; nothing here imports Qt (tests/test_app_models.py checks it).
"""
