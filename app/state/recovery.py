"""Crash recovery: each running editor autosaves into its own folder under a recovery root.

    session = RecoverySession(root)                 # creates root/<pid>-<id>/ with lock.json
    session.autosave(snapshot, project, saved_at)   # a full project + state.json
    session.saved()                                 # all saved: nothing left to recover
    session.close()                                 # clean exit: the folder goes

A folder whose lock names a process that is gone (or a session of this process that was
abandoned without close) holding an autosave is an orphan: the next start offers each one,
whether or not its project was saved later (by another editor, say); an autosave is removed
only when the user answered about it (or its work was saved by its own session).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.api import EngineError

from .lock import owner_alive
from .project import MEDIA_DIR, PROJECT_FILE, Stamp, save_project, write_file
from .timeline import Snapshot

log = logging.getLogger(__name__)

LOCK_FILE = "lock.json"
STATE_FILE = "state.json"
ENDED_FILE = "ended.json"  # why the editor ended, when a signal ended it
_live: set[str] = set()  # sessions of this process that are still open


@dataclass(frozen=True)
class Orphan:
    """An autosave left behind by an editor that did not exit cleanly."""

    folder: Path
    project: Path | None  # the project folder it belonged to (None: never saved)
    autosaved: float
    saved: float | None  # that session's last explicit save
    stamp: Stamp | None = None  # of the project.json that session last read or wrote
    ended_by: str | None = None  # the signal that ended that editor (None: a crash)

    @property
    def newer(self) -> bool:
        """Whether the autosave is newer than the project's last save (by anyone)."""
        return self.autosaved > max(self.saved or 0.0, self.project_saved or 0.0)

    @property
    def project_saved(self) -> float | None:
        """When the project folder's project.json was last written (None: there is none)."""
        try:
            return (self.project / PROJECT_FILE).stat().st_mtime if self.project else None
        except OSError:
            return None

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class RecoverySession:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder = self.root / self.id
        self.autosaved: float | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=False)
            lock = json.dumps(
                {"pid": os.getpid(), "session": self.id, "started": time.time()}
            ).encode()
            write_file(self.folder / LOCK_FILE, lock)
        except OSError as exc:
            raise EngineError(f"cannot create the recovery folder {self.folder}: {exc}") from exc
        _live.add(self.id)

    def autosave(
        self,
        snap: Snapshot,
        project: Path | None,
        saved_at: float | None,
        stamp: Stamp | None = None,
        **extra,
    ) -> float:
        """Write the snapshot, when it was taken and the stamp of the project.json it is based
        on; raises EngineError (e.g. full disk)."""
        save_project(snap, self.folder, force=True, **extra)
        now = time.time()
        state = {
            "project": str(project) if project else None,
            "autosaved": now,
            "saved": saved_at,
            "stamp": [stamp.size, stamp.sha256] if stamp else None,
        }
        write_file(self.folder / STATE_FILE, json.dumps(state).encode())
        self.autosaved = now
        return now

    def saved(self) -> None:
        """Everything autosaved is now saved in its project: a crash from here on leaves
        nothing to recover until the next autosave."""
        (self.folder / STATE_FILE).unlink(missing_ok=True)
        (self.folder / PROJECT_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.folder / MEDIA_DIR, ignore_errors=True)
        self.autosaved = None

    def ended_by(self, reason: str) -> None:
        """A signal (`reason`, e.g. "SIGTERM") ends the editor with work kept: the next start
        says so instead of calling it a crash."""
        try:
            write_file(self.folder / ENDED_FILE, json.dumps({"reason": reason}).encode())
        except OSError as exc:  # the question then reads as after a crash
            log.warning("cannot note why the editor ended: %s", exc)

    def close(self, clean: bool = True) -> None:
        """End the session: a clean exit removes its folder; clean=False leaves it as after a crash."""
        _live.discard(self.id)
        if clean:
            shutil.rmtree(self.folder, ignore_errors=True)


def find_orphans(root: str | Path) -> list[Orphan]:
    """Autosaves of sessions that ended without close(), newest first. Leftover folders with
    nothing to recover (never autosaved, or saved since) are removed."""
    root = Path(root)
    found = []
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        if not folder.is_dir() or not (folder / LOCK_FILE).is_file():
            continue
        try:
            info = json.loads((folder / LOCK_FILE).read_text())
            pid, session = int(info["pid"]), str(info["session"])
            started = float(info.get("started", "inf"))  # unknown: no reuse check
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pid, session, started = 0, "", 0.0  # damaged: no editor can be using it
        if session in _live or (pid != os.getpid() and owner_alive(pid, started)):
            continue  # an editor that is still running
        orphan = _read_orphan(folder)
        if orphan is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            found.append(orphan)
    return sorted(found, key=lambda o: o.autosaved, reverse=True)


def _read_orphan(folder: Path) -> Orphan | None:
    """The autosave in a recovery folder; None when it holds none."""
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        stamp = state.get("stamp")
        return Orphan(
            folder,
            Path(state["project"]) if state.get("project") else None,
            float(state["autosaved"]),
            float(state["saved"]) if state.get("saved") else None,
            Stamp(int(stamp[0]), str(stamp[1])) if stamp else None,
            _ended_by(folder),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        if not (folder / PROJECT_FILE).is_file():
            return None  # never autosaved, or everything autosaved was saved since
        log.warning("recovery state of %s is missing or damaged; the autosave is offered", folder)
        return Orphan(folder, None, (folder / PROJECT_FILE).stat().st_mtime, None)


def _ended_by(folder: Path) -> str | None:
    """The signal noted by `RecoverySession.ended_by` (a short name), else None."""
    try:
        reason = json.loads((folder / ENDED_FILE).read_text()).get("reason")
    except (OSError, ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) and reason.isalnum() and len(reason) <= 16 else None
