"""One editor per project folder: a lock file naming the owner's pid and host.

    lock = ProjectLock.acquire(folder)   # raises ProjectLocked(holder) while another editor has it
    lock.taken_over                      # the stale holder replaced (a crashed editor), or None
    lock.release()                       # on close / when another project replaces it

A lock is stale when its owner is gone: the same host and no process with its pid (or one that
started after the lock was made: the pid was reused, after a reboot say), or a lock of
this process whose owner was abandoned without release (what a killed window leaves behind when
tests run two editors in one process); a lock made for another folder (copied along with it) is
stale too. A lock from another host is never taken over: its owner cannot be checked from here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.api import EngineError

log = logging.getLogger(__name__)

LOCK_NAME = ".starflow-lock.json"
_held: set[str] = set()  # tokens of the locks this process holds


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return True


def process_started(pid: int) -> float | None:
    """When a process started (epoch s), from /proc on Linux; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time since boot
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def owner_alive(pid: int, since: float) -> bool:
    """Whether the process that made something at `since` (epoch s) may still run: its pid is
    alive and did not start later (a later one reuses the pid)."""
    if not pid_alive(pid):
        return False
    started = process_started(pid)
    return started is None or started <= since + 5.0


@dataclass(frozen=True)
class LockInfo:
    """Who holds a project folder."""

    pid: int
    host: str
    token: str
    started: float
    folder: str = ""  # the folder it was made in: a lock copied along with its folder is stale

    @property
    def stale(self) -> bool:
        """Whether the owner is gone (only knowable on this host)."""
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return self.token not in _held
        return not owner_alive(self.pid, self.started)

    def stale_in(self, folder: Path) -> bool:
        """stale, or a lock made for another folder (this one is a copy of that)."""
        return self.stale or bool(self.folder and self.folder != str(folder.resolve()))

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started))
        return f"process {self.pid} on {self.host}, since {when}"


class ProjectLocked(EngineError):
    """Another running editor has the folder open."""

    def __init__(self, folder: Path, holder: LockInfo) -> None:
        super().__init__(f"{folder.name} is open in another editor ({holder.describe()})")
        self.folder, self.holder = folder, holder


def read_lock(folder: str | Path) -> LockInfo | None:
    """The lock in `folder`, or None when there is none. A lock file that cannot be parsed (cut
    short by a crash while it was written) reads as a lock of no process (token ""), dated by
    its file time."""
    path = Path(folder) / LOCK_NAME
    try:
        return _parse(path.read_bytes()) or LockInfo(
            0, socket.gethostname(), "", path.stat().st_mtime
        )
    except FileNotFoundError:
        return None
    except OSError:
        return LockInfo(0, socket.gethostname(), "", 0.0)


def _parse(data: bytes) -> LockInfo | None:
    try:
        info = json.loads(data)
        return LockInfo(
            int(info["pid"]),
            str(info["host"]),
            str(info["token"]),
            float(info["started"]),
            str(info.get("folder", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


class ProjectLock:
    def __init__(self, folder: Path, info: LockInfo, taken_over: LockInfo | None) -> None:
        self.folder, self.info, self.taken_over = folder, info, taken_over

    @classmethod
    def acquire(cls, folder: str | Path) -> ProjectLock:
        """Lock an existing folder for this process. Raises ProjectLocked while a live editor
        holds it, EngineError when the lock file cannot be written."""
        folder = Path(folder)
        host, token, here = socket.gethostname(), uuid.uuid4().hex, str(folder.resolve())
        info = LockInfo(os.getpid(), host, token, time.time(), here)
        data = json.dumps(
            {"pid": info.pid, "host": host, "token": token, "started": info.started, "folder": here}
        ).encode()
        taken_over = None
        for _ in range(5):  # another editor may take a stale lock over at the same moment
            if _create(folder / LOCK_NAME, data):
                _held.add(info.token)
                if taken_over is not None:
                    log.warning("took over the stale lock of %s", folder)
                return cls(folder, info, taken_over)
            holder = read_lock(folder)
            if holder is None:
                continue  # released meanwhile
            if not holder.token and time.time() - holder.started < 2.0:
                time.sleep(0.1)  # being written by an editor that just created it
                continue
            if not holder.stale_in(folder):
                raise ProjectLocked(folder, holder)
            if _remove_if(folder / LOCK_NAME, holder):
                taken_over = holder
        raise EngineError(f"cannot lock {folder}: another editor keeps changing its lock")

    @property
    def held(self) -> bool:
        return self.info.token in _held

    def still_ours(self) -> bool:
        """Whether the lock file on disk is still this lock (not taken over meanwhile)."""
        holder = read_lock(self.folder)
        return holder is not None and holder.token == self.info.token

    def release(self) -> None:
        """Remove the lock file (when it is still ours)."""
        _held.discard(self.info.token)
        if self.still_ours():
            (self.folder / LOCK_NAME).unlink(missing_ok=True)

    def abandon(self) -> None:
        """Forget the lock without removing it: what a crash leaves behind."""
        _held.discard(self.info.token)


def _create(path: Path, data: bytes) -> bool:
    """Write a new file only when none exists (False when one does), with the user's umask."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    except OSError as exc:
        raise EngineError(f"cannot lock {path.parent}: {exc.strerror or exc}") from exc
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _remove_if(path: Path, holder: LockInfo) -> bool:
    """Remove a stale lock when it is still `holder`'s: it is renamed aside first, so of two
    editors taking it over at once only one removes it; one that moved a fresh lock aside puts
    it back."""
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise EngineError(f"cannot take over the lock of {path.parent}: {exc}") from exc
    try:
        moved = _parse(aside.read_bytes())
    except OSError:
        moved = None
    fresh = moved is not None and moved.token != holder.token
    if fresh:  # a lock made meanwhile: put it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
    with contextlib.suppress(OSError):  # (a folder of that name stays aside)
        aside.unlink(missing_ok=True)
    return not fresh
