"""Crash recovery: each running editor autosaves into its own folder under a recovery root.

    session = RecoverySession(root)                 # creates root/<pid>-<id>/ with lock.json
    session.autosave(snapshot, project, saved_at)   # a full project + state.json
    session.close()                                 # clean exit: the folder goes

A folder whose lock names a process that is gone (or a session of this process that was
abandoned without close) is an orphan: the next start offers to recover it when its autosave
is newer than the project's last explicit save.
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
from engine.media import atomic_write

from .project import PROJECT_FILE, save_project
from .timeline import Snapshot

log = logging.getLogger(__name__)

LOCK_FILE = "lock.json"
STATE_FILE = "state.json"
_live: set[str] = set()  # sessions of this process that are still open


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Orphan:
    """An autosave left behind by an editor that did not exit cleanly."""

    folder: Path
    project: Path | None  # the project folder it belonged to (None: never saved)
    autosaved: float
    saved: float | None  # that session's last explicit save

    @property
    def newer(self) -> bool:
        """Whether the autosave holds work the project folder does not."""
        last = self.saved or 0.0
        if self.project is not None and (self.project / PROJECT_FILE).is_file():
            last = max(last, (self.project / PROJECT_FILE).stat().st_mtime)
        return self.autosaved > last

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
            atomic_write(self.folder / LOCK_FILE, lambda f: f.write(lock))
        except OSError as exc:
            raise EngineError(f"cannot create the recovery folder {self.folder}: {exc}") from exc
        _live.add(self.id)

    def autosave(
        self, snap: Snapshot, project: Path | None, saved_at: float | None, **extra
    ) -> float:
        """Write the snapshot and when it was taken; raises EngineError (e.g. full disk)."""
        save_project(snap, self.folder, **extra)
        now = time.time()
        state = {"project": str(project) if project else None, "autosaved": now, "saved": saved_at}
        data = json.dumps(state).encode()
        atomic_write(self.folder / STATE_FILE, lambda f: f.write(data))
        self.autosaved = now
        return now

    def close(self, clean: bool = True) -> None:
        """End the session: a clean exit removes its folder; clean=False leaves it as after a crash."""
        _live.discard(self.id)
        if clean:
            shutil.rmtree(self.folder, ignore_errors=True)


def find_orphans(root: str | Path) -> list[Orphan]:
    """Autosaves of sessions that ended without close(), newest first. Leftover folders with
    nothing recoverable (no autosave, or a damaged lock) are removed."""
    root = Path(root)
    found = []
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        lock = folder / LOCK_FILE
        if not folder.is_dir() or not lock.is_file():
            continue
        try:
            info = json.loads(lock.read_text())
            pid, session = int(info["pid"]), str(info["session"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("removing a damaged recovery folder %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
            continue
        if session in _live or (pid != os.getpid() and _pid_alive(pid)):
            continue  # an editor that is still running
        try:
            state = json.loads((folder / STATE_FILE).read_text())
            orphan = Orphan(
                folder,
                Path(state["project"]) if state.get("project") else None,
                float(state["autosaved"]),
                float(state["saved"]) if state.get("saved") else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(folder, ignore_errors=True)  # never autosaved: nothing to recover
            continue
        found.append(orphan)
    return sorted(found, key=lambda o: o.autosaved, reverse=True)
