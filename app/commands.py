"""QUndoCommands for every timeline edit; each calls the Qt-free Timeline primitives."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from .state.timeline import Clip, Timeline


class AddClip(QUndoCommand):
    def __init__(self, timeline: Timeline, clip: Clip, index: int, text: str = "Add clip") -> None:
        super().__init__(text)
        self.timeline, self.clip, self.index = timeline, clip, index

    def redo(self) -> None:
        self.timeline.insert(self.index, self.clip)
        self.timeline.select(self.clip.id)

    def undo(self) -> None:
        self.timeline.remove(self.clip.id)


class RemoveClip(QUndoCommand):
    def __init__(self, timeline: Timeline, clip_id: str) -> None:
        super().__init__("Delete clip")
        self.timeline, self.clip_id = timeline, clip_id
        self.index, self.clip = -1, None

    def redo(self) -> None:
        self.index, self.clip = self.timeline.remove(self.clip_id)

    def undo(self) -> None:
        self.timeline.insert(self.index, self.clip)
        self.timeline.select(self.clip_id)


class ReplaceClip(QUndoCommand):
    """Swap a clip for a changed copy with the same id (trim, rename)."""

    def __init__(self, timeline: Timeline, new: Clip, text: str = "Trim clip") -> None:
        super().__init__(text)
        self.timeline, self.new = timeline, new
        self.old = timeline.clip(new.id)

    def redo(self) -> None:
        self.timeline.replace(self.new)

    def undo(self) -> None:
        self.timeline.replace(self.old)


class SplitClip(QUndoCommand):
    def __init__(self, timeline: Timeline, original: Clip, left: Clip, right: Clip) -> None:
        super().__init__("Split clip")
        self.timeline, self.original, self.left, self.right = timeline, original, left, right

    def redo(self) -> None:
        i = self.timeline.index(self.original.id)
        self.timeline.replace(self.left)
        self.timeline.insert(i + 1, self.right)
        self.timeline.select(self.right.id)

    def undo(self) -> None:
        self.timeline.remove(self.right.id)
        self.timeline.replace(self.original)
        self.timeline.select(self.original.id)


class MoveClip(QUndoCommand):
    def __init__(self, timeline: Timeline, clip_id: str, index: int) -> None:
        super().__init__("Move clip")
        self.timeline, self.clip_id, self.index = timeline, clip_id, index
        self.old = timeline.index(clip_id)

    def redo(self) -> None:
        self.timeline.move(self.clip_id, self.index)
        self.timeline.select(self.clip_id)

    def undo(self) -> None:
        self.timeline.move(self.clip_id, self.old)
        self.timeline.select(self.clip_id)
