"""Timeline edits from menus, keys and the timeline view: each one an undoable command."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtGui import QUndoStack

from .commands import AddClip, MoveClip, RemoveClip, ReplaceClip, SplitClip
from .dialogs import Dialogs
from .state.messages import MessageLog
from .state.timeline import Timeline

MAX_CLIP_NAME = 200


class TimelineEditor:
    """Pushes the undo commands that change `timeline`; refusals go to `messages`."""

    def __init__(
        self, timeline: Timeline, undo: QUndoStack, messages: MessageLog, dialogs: Dialogs
    ) -> None:
        self.timeline, self.undo, self.messages, self.dialogs = timeline, undo, messages, dialogs

    def delete_selected(self) -> None:
        if self.timeline.selected:
            self.undo.push(RemoveClip(self.timeline, self.timeline.selected))

    def duplicate_selected(self) -> None:
        t = self.timeline
        if t.selected:
            self.undo.push(
                AddClip(t, t.duplicate_of(t.selected), t.index(t.selected) + 1, "Duplicate clip")
            )

    def rename_selected(self, name: str | None = None) -> None:
        """Rename the selected clip (asks for the name when not given)."""
        clip = self.timeline.clip(self.timeline.selected)
        if clip is None:
            self.messages.error("Select a clip to rename")
            return
        if name is None:
            name = self.dialogs.clip_name(clip.name)
            if name is None:
                return
        name = " ".join(name.split())  # one line: no tabs or newlines in the timeline label
        if not name:
            self.messages.error("A clip name cannot be empty")
        elif len(name) > MAX_CLIP_NAME:
            self.messages.error(f"A clip name can have at most {MAX_CLIP_NAME} characters")
        elif name != clip.name:
            self.undo.push(ReplaceClip(self.timeline, replace(clip, name=name), "Rename clip"))

    def split_at_playhead(self) -> None:
        parts = self.timeline.split_parts(self.timeline.playhead)
        if parts is None:
            self.messages.info("Move the playhead inside a clip to split it")
            return
        self.undo.push(SplitClip(self.timeline, *parts))

    def trim(self, clip_id: str, start: int, stop: int) -> None:
        """Show media frames [start, stop) of a clip."""
        new = self.timeline.trimmed(clip_id, start, stop)
        if new != self.timeline.clip(clip_id):
            self.undo.push(ReplaceClip(self.timeline, new))

    def trim_to_playhead(self, side: str) -> None:
        """Trim the clip under the playhead: side 'start' drops frames before it, 'end' after it."""
        hit = self.timeline.locate(self.timeline.playhead)
        if hit is None:
            return
        clip, local = hit
        if side == "start":
            self.trim(clip.id, clip.start + local, clip.stop)
            self.timeline.set_playhead(self.timeline.offset(clip.id))
        else:
            self.trim(clip.id, clip.start, clip.start + local + 1)

    def move_clip(self, clip_id: str, index: int) -> None:
        index = max(0, min(index, len(self.timeline.clips) - 1))
        if self.timeline.clip(clip_id) is not None and self.timeline.index(clip_id) != index:
            self.undo.push(MoveClip(self.timeline, clip_id, index))

    def nudge_selected(self, delta: int) -> None:
        selected = self.timeline.selected
        if selected:
            self.move_clip(selected, self.timeline.index(selected) + delta)
