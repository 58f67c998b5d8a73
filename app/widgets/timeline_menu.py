"""The timeline's right-click menus and their wiring to the studio.

    view.set_context_actions(clip=[...], empty=[...])   # the window's QActions (None: separator)
    wire_timeline(window)                               # takes, compare, copy/paste, export

A clip's menu: the given actions (regenerate, extend, edit, duplicate, delete, ...), Copy, Export
clip, and its takes (choose one, compare two). The empty track's: Paste and the given actions
(import video, open image). Without `set_context_actions` the window's own actions of those names
are used.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMenu, QWidget

TimelineView = QWidget  # the timeline view (timeline_view imports this module, not the reverse)

CLIP_ACTIONS = ("regenerate", "extend", "edit", None, "duplicate", "delete")
EMPTY_ACTIONS = ("import_video", "open_image")


def _window_actions(view: TimelineView, names) -> list:
    found = getattr(view.window(), "actions_", None)
    if found is None:
        return []
    return [None if n is None else getattr(found, n, None) for n in names]


def build_menu(view: TimelineView, clip_id: str) -> QMenu:
    """The right-click menu for clip `clip_id` ("" for the empty track) of a timeline view."""
    if not getattr(view, "wired", False):
        wire_timeline(view.window())
    menu = QMenu(view)
    t = view.timeline
    clip = t.clip(clip_id)
    if clip is None:
        paste = menu.addAction("&Paste clip")
        paste.setEnabled(t.clip(view.copied) is not None)
        paste.triggered.connect(lambda: view.paste_requested.emit(view.copied, len(t.clips)))
        _add(menu, view.empty_actions or _window_actions(view, EMPTY_ACTIONS))
        return menu
    _add(menu, view.clip_actions or _window_actions(view, CLIP_ACTIONS))
    copy = menu.addAction("&Copy clip")
    copy.triggered.connect(lambda: setattr(view, "copied", clip.id))
    paste = menu.addAction("&Paste after this clip")
    paste.setEnabled(t.clip(view.copied) is not None)
    paste.triggered.connect(lambda: view.paste_requested.emit(view.copied, t.index(clip.id) + 1))
    menu.addSeparator()
    export = menu.addAction("E&xport clip…")
    export.triggered.connect(lambda: view.export_requested.emit(clip.id))
    takes = clip.all_takes()
    if len(takes) > 1:
        menu.addSeparator()
        sub = menu.addMenu(f"&Takes ({len(takes)})")
        for i, take in enumerate(takes):
            seed = f" · seed {take.request.seed}" if take.request else ""
            action = sub.addAction(f"Take &{i + 1}{seed}")
            action.setCheckable(True)
            action.setChecked(i == clip.take_index)
            action.triggered.connect(lambda _c=False, i=i: view.take_requested.emit(clip.id, i))
        compare = menu.addAction("C&ompare takes…")
        compare.triggered.connect(lambda: view.compare_requested.emit(clip.id))
    return menu


def _add(menu: QMenu, actions) -> None:
    for action in actions:
        if action is None:
            menu.addSeparator()
        else:
            menu.addAction(action)
    if actions:
        menu.addSeparator()


def wire_timeline(window) -> None:
    """Connect a main window's timeline view to its studio: choose / compare takes, paste a
    copied clip, export a clip with the export dialog. Does nothing without a studio."""
    view = getattr(window, "timeline_view", None)
    studio = getattr(window, "studio", None)
    if view is None or studio is None or getattr(view, "wired", False):
        return
    from ..commands import AddClip
    from ..export import open_export_dialog
    from .takes import CompareTakesDialog

    view.wired = True
    t, generation = studio.timeline, studio.generation

    def paste(clip_id: str, index: int) -> None:
        if t.clip(clip_id) is not None:
            studio.undo.push(AddClip(t, t.duplicate_of(clip_id), index, "Paste clip"))

    def compare(clip_id: str) -> None:
        dialog = CompareTakesDialog(t, clip_id, window)
        dialog.chosen.connect(lambda i: generation.choose_take(clip_id, i))
        dialog.finished.connect(dialog.deleteLater)
        window.compare_dialog = dialog
        dialog.show()

    view.take_requested.connect(generation.choose_take)
    view.paste_requested.connect(paste)
    view.compare_requested.connect(compare)
    view.export_requested.connect(lambda clip_id: open_export_dialog(studio, window, clip_id))
