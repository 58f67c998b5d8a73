"""Autosave and crash recovery for ProjectIO: the part of it that writes the recovery copy, offers
the autosaves of crashed editors and keeps unsaved work when a signal ends the editor.

A mixin of ProjectIO (app/project_io.py), whose state it reads and whose project it replaces:
settings, dialogs, messages, tasks, timeline, recovery (the RecoverySession), autosave_timer,
project_path, saved_at, stamp, read_only, dirty, ending, lock and _locks, _edits and
_autosaved_edits; check_disk, may_stop_jobs, may_replace_project, _set_project, _lock_for,
_release.
"""

from __future__ import annotations

import time
from pathlib import Path

from engine.api import EngineError

from .state.lock import ProjectLock
from .state.project import is_project, load_project
from .state.recovery import Orphan, find_orphans


class RecoveryMixin:
    """ProjectIO's autosave and recovery (see the module docstring for what it relies on)."""

    def keep_for_restart(self, reason: str = "") -> bool:
        """A signal (logout, kill; its name in `reason`) ends the editor: unsaved work goes into
        the autosave now (the next start offers it, naming the signal) and the project's lock is
        given up. True when work was kept: end with close(clean=False) then."""
        self.ending = True
        self.autosave_timer.stop()
        for lock in list(self._locks):
            self._release(lock)
        self.lock = None
        if not self.dirty:
            return False
        self._autosaved_edits = -1  # something to write, whatever was autosaved before
        self.autosave()
        self.tasks.wait()
        if reason and self.recovery is not None:
            self.recovery.ended_by(reason)
        return True

    def _on_edit(self, _index: int) -> None:
        self._edits += 1

    def autosave(self) -> None:
        """Write a recovery copy when something changed since the last one (off the GUI thread);
        also notices a project.json changed on disk by someone else."""
        self.check_disk()
        if self.recovery is None or self._edits == self._autosaved_edits:
            return
        if not self.dirty and (self.project_path is not None or not self.timeline.clips):
            return
        snap, edits, recovery = self.timeline.snapshot(), self._edits, self.recovery
        path = None if self.read_only else self.project_path
        saved_at, stamp = self.saved_at, self.stamp

        def done(_t: float) -> None:
            self._autosaved_edits = edits

        self.tasks.submit(
            "autosave",
            lambda: recovery.autosave(snap, path, saved_at, stamp),
            done,
            lambda m: self.messages.warning(f"Autosave failed: {m}"),
        )

    def _offer_recovery(self) -> Orphan | None:
        """Offer each autosave left by a crashed editor, newest first, until one is recovered
        (returned); an autosave is removed only when the user said No to it, or once its work
        is copied into this session's autosave. Those not asked about yet stay for the next
        start. Recovered work is unsaved changes of its project (when no other editor has it)."""
        try:
            orphans = find_orphans(self.settings.recovery_dir)
        except OSError as exc:
            self.messages.warning(f"Cannot look for autosaves: {exc}")
            return None
        for i, orphan in enumerate(orphans):
            answer = self._ask_recover(orphan, i, len(orphans))
            if self.ending:  # the question was closed by a signal, not answered
                return None
            if not answer:
                orphan.discard()
            elif self._recover(orphan):
                rest = len(orphans) - i - 1
                if rest:
                    self.messages.info(
                        f"{rest} more autosave{'s' if rest > 1 else ''} of crashed editors"
                        f" {'are' if rest > 1 else 'is'} kept: offered at the next start"
                        " (or File > Recover autosaves)"
                    )
                return orphan
        return None

    def _recover(self, orphan: Orphan) -> bool:
        """Make an autosave this editor's unsaved work; it moves into this session's autosave
        (kept where it is when it cannot be read or copied)."""
        try:
            snap = load_project(orphan.folder)[0].snapshot()
        except EngineError as exc:
            self.messages.error(f"The autosave cannot be recovered (it is kept): {exc}")
            return False
        path, lock = self._recovered_path(orphan)
        if self.recovery is not None:
            try:
                self.recovery.autosave(snap, path, orphan.saved, orphan.stamp)
                orphan.discard()
            except EngineError as exc:
                self.messages.warning(f"The autosave is kept where it is: {exc}")
        self._set_project(snap, path, dirty=True, lock=lock, stamp=orphan.stamp)
        self.saved_at = orphan.saved
        self.messages.info("Recovered unsaved work: save the project to keep it")
        return True

    def recover_kept(self) -> bool:
        """Offer the autosaves of crashed editors kept for later (after the unsaved-changes
        question): what a start offers, at any time. True when one was recovered."""
        if not (self.may_stop_jobs("recovering") and self.may_replace_project("recovering")):
            return False
        if self._offer_recovery() is not None:
            return True
        self.messages.info("No autosave of a crashed editor is left to recover")
        return False

    def _recovered_path(self, orphan: Orphan) -> tuple[Path | None, ProjectLock | None]:
        """The project recovered work belongs to, locked; None (untitled) when another editor
        has it open or it is gone."""
        if orphan.project is None:
            return None, None
        if orphan.project.exists() and not is_project(orphan.project):
            return None, None
        try:
            orphan.project.mkdir(parents=True, exist_ok=True)
            return orphan.project, self._lock_for(orphan.project)
        except (OSError, EngineError) as exc:
            self.messages.warning(
                f"The recovered work is untitled: {exc}; Save asks for a folder to keep it in"
            )
            return None, None

    def _ask_recover(self, orphan: Orphan, i: int, n: int) -> bool:
        def at(t: float) -> str:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))

        of = f" of {orphan.project.name}" if orphan.project else ""
        if orphan.ended_by:
            text = f"STARFlow Studio was closed by {orphan.ended_by} (a logout or shutdown)"
            text += f" before its work was saved. Recover the autosave{of} from"
        else:
            text = f"STARFlow Studio did not exit cleanly. Recover the autosave{of} from"
        text += f" {at(orphan.autosaved)}?"
        if n > 1:
            text += f" ({i + 1} of {n} autosaves)"
        later = orphan.project_saved
        if later is not None and later > orphan.autosaved:
            text += f" {orphan.project.name} was saved after it, at {at(later)} (another editor?)."
        return self.dialogs.ask("Recover unsaved work?", text + " No deletes the autosave.")
