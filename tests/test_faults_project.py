"""Fault injection on project folders (issue 31): two editors on one project, concurrent saves
against a reader, a killed window followed by another editor's save and a restart, two crashed
projects, damaged project files, the umask. Each test replays its class of faults on the
editor's project layer (ProjectIO over a real timeline, undo stack and file tasks, no model)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoStack

from app.commands import AddClip
from app.project_io import ProjectIO
from app.state.messages import MessageLog
from app.state.project import PROJECT_FILE, load_project, save_project
from app.state.recovery import RecoverySession
from app.state.request import ClipRequest, SourceRef
from app.state.timeline import Clip, Take, Timeline, new_id
from app.tasks import TaskRunner
from app_utils import ScriptedDialogs, isolated_settings
from engine.api import EngineError

REPO = Path(__file__).resolve().parents[1]
LOCK = ".starflow-lock.json"


class Dialogs(ScriptedDialogs):
    """Scripted answers per question title (`ask` is the default), every question's text kept."""

    def __init__(self, **answers) -> None:
        super().__init__(**answers)
        self.texts: list[str] = []

    def ask(self, title: str, text: str) -> bool:
        self.asked.append(title)
        self.texts.append(text)
        answer = self.answers.get(title, self.answers.get("ask", False))
        return answer.pop(0) if isinstance(answer, list) else bool(answer)


def editor(qtbot, prefs: Path, project: Path | None = None, start: bool = True, **answers):
    """One editor's project layer; editors made with the same `prefs` share the recovery folder
    (as two windows of one user do)."""
    owner = QObject()  # owns the Qt parts, so they go together
    timeline, undo, tasks = Timeline(), QUndoStack(owner), TaskRunner(owner)
    io = ProjectIO(
        isolated_settings(prefs),
        Dialogs(**answers),
        timeline,
        undo,
        MessageLog(),
        tasks,
        model_info=lambda: None,
        may_stop_jobs=lambda _doing: True,
        parent=owner,
    )
    ed = SimpleNamespace(io=io, timeline=timeline, undo=undo, tasks=tasks, owner=owner)
    if start:
        io.start(project)
        wait(qtbot, ed)
    return ed


def wait(qtbot, ed) -> None:
    qtbot.waitUntil(lambda: not ed.tasks.busy, timeout=10_000)


def add_clip(ed, value: int, frames: int = 3) -> str:
    t = ed.timeline
    media = t.add_media(np.full((frames, t.height, t.width, 3), value, np.uint8), "generated")
    clip = Clip(new_id("c"), media.id, 0, frames, f"clip {value}", ClipRequest(prompt="p"))
    ed.undo.push(AddClip(t, clip, len(t.clips)))
    return clip.id


def values(timeline: Timeline) -> list[int]:
    """Each clip's fill value: which clips a timeline holds."""
    return [int(timeline.clip_frames(c.id)[0, 0, 0, 0]) for c in timeline.clips]


def said(ed, level: str) -> str:
    """The editor's latest message of a level."""
    msg = ed.io.messages.latest(level)
    return msg.text if msg else ""


def crash(ed) -> None:
    """What kill -9 leaves: the autosave and the lock file stay, nothing else runs."""
    ed.tasks.wait()
    ed.io.close(clean=False)


def close(ed) -> None:
    ed.tasks.wait()
    ed.io.close()


def saved_project(qtbot, prefs: Path, folder: Path, *fills: int) -> None:
    ed = editor(qtbot, prefs)
    for v in fills:
        add_clip(ed, v)
    ed.io.save_as(folder)
    wait(qtbot, ed)
    close(ed)


# ---- two editors on one project --------------------------------------------------------------
def test_a_second_editor_gets_read_only_or_a_copy_and_never_drops_the_first_ones_clips(
    qtbot, tmp_path
):
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    a = editor(qtbot, tmp_path, folder)
    lock = json.loads((folder / LOCK).read_text())
    assert (lock["pid"], lock["host"]) == (os.getpid(), socket.gethostname())

    b = editor(qtbot, tmp_path, folder, ask=True)  # read-only
    assert b.io.dialogs.asked == ["Project open in another editor"]
    assert (
        "open in another editor" in b.io.dialogs.texts[0]
        and str(os.getpid()) in b.io.dialogs.texts[0]
    )
    assert b.io.read_only and b.io.project_path == folder and values(b.timeline) == [10]
    add_clip(b, 20)
    b.io.save()  # read-only: asks for a new folder (cancelled here): the project is untouched
    wait(qtbot, b)
    assert "save_project" in b.io.dialogs.asked and values(load_project(folder)[0]) == [10]
    b.io.save_as(folder)  # the same folder by Save As: refused too
    wait(qtbot, b)
    assert "read-only" in b.io.messages.errors()[-1].text
    b.io.save_as(tmp_path / "mine")  # a new folder: saved there
    wait(qtbot, b)
    assert values(load_project(tmp_path / "mine")[0]) == [10, 20] and not b.io.dirty

    add_clip(a, 30)  # the first editor saves as before, and says so truthfully
    a.io.save()
    wait(qtbot, a)
    assert values(load_project(folder)[0]) == [10, 30] and not a.io.dirty
    assert not a.io.messages.errors() and said(a, "info").startswith("Saved")

    c = editor(qtbot, tmp_path, folder, **{"Project open in another editor": False, "ask": True})
    assert c.io.project_path is None and c.io.dirty and values(c.timeline) == [10, 30]  # a copy
    c.io.save()  # untitled: asks for a folder
    assert c.io.dialogs.asked[-1] == "save_project"
    d = editor(qtbot, tmp_path, folder, ask=False)  # neither: nothing is opened
    assert d.io.project_path is None and not d.timeline.clips
    for ed in (b, c, d):
        close(ed)
    assert (folder / LOCK).is_file()  # still the first editor's
    close(a)
    assert not (folder / LOCK).exists()
    e = editor(qtbot, tmp_path, folder)  # free again: opened for editing without a question
    assert not e.io.dialogs.asked and not e.io.read_only and e.io.project_path == folder
    close(e)


def test_a_project_whose_folder_cannot_be_locked_opens_read_only(qtbot, tmp_path, monkeypatch):
    import app.project_io as project_io

    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)

    def refuse(folder):
        raise EngineError(f"cannot lock {folder}: Read-only file system")

    monkeypatch.setattr(project_io.ProjectLock, "acquire", refuse)
    a = editor(qtbot, tmp_path, folder)
    assert (
        a.io.read_only and values(a.timeline) == [10] and "Read-only file system" in said(a, "info")
    )
    close(a)
    (folder / LOCK).mkdir()  # a folder where the lock file goes: taken as a damaged lock
    monkeypatch.undo()
    b = editor(qtbot, tmp_path, folder)
    assert not b.io.read_only and json.loads((folder / LOCK).read_text())["pid"] == os.getpid()
    close(b)


def test_a_save_asks_before_overwriting_a_project_json_changed_on_disk(qtbot, tmp_path):
    """Another program (or an editor on another host, whose lock cannot be checked) writes
    project.json: the first editor no longer says saved, asks at close and before a save."""
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    a = editor(qtbot, tmp_path, folder, **{"Replace the project on disk?": [False, True]})
    other = Timeline()
    media = other.add_media(np.full((2, 48, 64, 3), 99, np.uint8), "generated")
    other.insert(0, Clip("cother", media.id, 0, 2))
    save_project(other.snapshot(), folder, force=True)  # behind the editor's back

    assert not a.io.dirty
    assert not a.io.check_disk() and a.io.dirty  # noticed (the autosave timer checks too)
    a.io.autosave()  # the editor's version is in no file any more: the autosave keeps it
    wait(qtbot, a)
    assert (a.io.recovery.folder / "state.json").is_file()
    assert "changed on disk" in said(a, "warning")
    assert not a.io.may_replace_project("closing") or "confirm_close" in a.io.dialogs.asked
    assert a.io.dialogs.asked.count("confirm_close") == 1

    add_clip(a, 20)
    a.io.save()  # No: theirs stays
    wait(qtbot, a)
    assert values(load_project(folder)[0]) == [99] and a.io.dirty
    a.io.save()  # Yes: ours replaces it
    wait(qtbot, a)
    assert values(load_project(folder)[0]) == [10, 20] and not a.io.dirty
    assert a.io.dialogs.asked.count("Replace the project on disk?") == 2
    a.io.save_as(tmp_path / "film2")  # a new folder: no question
    wait(qtbot, a)
    assert a.io.dialogs.asked.count("Replace the project on disk?") == 2
    close(a)


def test_concurrent_saves_never_leave_project_json_naming_removed_media(tmp_path):
    """Two writers forcing saves of different timelines into one folder and a reader loading
    it all the while: every load succeeds and the last save is whole."""
    folder = tmp_path / "film"
    snaps = []
    for fill in (1, 2):
        t = Timeline()
        for _ in range(2):  # each save names media the other's save does not
            m = t.add_media(np.full((2, 48, 64, 3), fill, np.uint8), "generated")
            t.insert(len(t.clips), Clip(new_id("c"), m.id, 0, 2))
        snaps.append(t.snapshot())
    save_project(snaps[0], folder)
    stop, failures, loads = threading.Event(), [], [0]

    def writer(snap) -> None:
        for _ in range(25):
            save_project(snap, folder, force=True)

    def reader() -> None:
        while not stop.is_set():
            try:
                load_project(folder)
                loads[0] += 1
            except EngineError as exc:
                failures.append(str(exc))

    threads = [threading.Thread(target=writer, args=(s,)) for s in snaps]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert loads[0] > 0 and failures == []
    final = load_project(folder)[0]
    assert len(final.clips) == 2 and len(list((folder / "media").glob("*.npz"))) == 2


# ---- killed windows, stale locks and recovery --------------------------------------------------
KILLED_EDITOR = """
import os, signal, sys
from app.state.lock import ProjectLock
ProjectLock.acquire(sys.argv[1])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_stale_lock_of_a_killed_editor_is_taken_over_with_a_notice(qtbot, tmp_path):
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", KILLED_EDITOR, str(folder)], env=env, check=False)
    assert run.returncode == -signal.SIGKILL
    dead = json.loads((folder / LOCK).read_text())["pid"]
    a = editor(qtbot, tmp_path, folder)
    assert not a.io.dialogs.asked and a.io.project_path == folder and not a.io.read_only
    notice = said(a, "warning")
    assert "no longer has it open" in notice and str(dead) in notice
    assert json.loads((folder / LOCK).read_text())["pid"] == os.getpid()
    crash(a)  # a window of this process killed: its lock is stale too
    b = editor(qtbot, tmp_path, folder)
    assert not b.io.dialogs.asked and "no longer has it open" in said(b, "warning")
    close(b)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live process that started after the lock was made: its pid was reused
        lock = {"pid": sleeper.pid, "host": socket.gethostname(), "token": "x"}
        (folder / LOCK).write_text(json.dumps({**lock, "started": time.time() - 3600}))
        r = editor(qtbot, tmp_path, folder)
        assert not r.io.dialogs.asked and "no longer has it open" in said(r, "warning")
        close(r)
        (folder / LOCK).write_text(json.dumps({**lock, "started": time.time()}))  # its owner
        s = editor(qtbot, tmp_path, folder, ask=False)
        assert s.io.dialogs.asked[0] == "Project open in another editor"
        close(s)
    finally:
        sleeper.kill()
        sleeper.wait()
    (folder / LOCK).write_text(
        json.dumps({"pid": 1, "host": "elsewhere", "token": "x", "started": 0})
    )  # another host's editor cannot be checked from here: never taken over
    c = editor(qtbot, tmp_path, folder, ask=False)
    assert c.io.dialogs.asked[0] == "Project open in another editor" and not c.timeline.clips
    close(c)
    (folder / LOCK).unlink()
    d = editor(qtbot, tmp_path, folder)
    shutil.copytree(folder, tmp_path / "copy")  # the lock file too, while d has the original
    e = editor(qtbot, tmp_path, tmp_path / "copy")  # the copy is free
    assert not e.io.dialogs.asked and e.io.project_path == tmp_path / "copy" and not e.io.read_only
    for ed in (d, e):
        close(ed)


def test_recovery_never_deletes_an_autosave_the_user_was_not_asked_about(qtbot, tmp_path):
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    a = editor(qtbot, tmp_path / "a", folder)  # its own recovery folder: b does not see it
    add_clip(a, 20)
    a.io.autosave()
    crash(a)
    b = editor(qtbot, tmp_path / "b", folder)  # takes the stale lock, saves later
    add_clip(b, 30)
    b.io.save()
    wait(qtbot, b)
    close(b)
    assert values(load_project(folder)[0]) == [10, 30]

    c = editor(qtbot, tmp_path / "a", ask=False)  # project.json is newer: asked all the same
    assert c.io.dialogs.asked == ["Recover unsaved work?"]
    assert "was saved after it" in c.io.dialogs.texts[0]
    close(c)
    assert not list((tmp_path / "a" / "recovery").iterdir())  # No deleted it, after asking

    a = editor(qtbot, tmp_path / "a", folder)  # again, and Yes this time
    add_clip(a, 40)
    a.io.autosave()
    crash(a)
    b = editor(qtbot, tmp_path / "b", folder)
    add_clip(b, 50)
    b.io.save()
    wait(qtbot, b)
    close(b)
    d = editor(qtbot, tmp_path / "a", **{"Recover unsaved work?": True})
    assert values(d.timeline) == [10, 30, 40] and d.io.dirty and d.io.project_path == folder
    d.io.save()  # project.json is not what the crashed editor read: asks first (No here)
    wait(qtbot, d)
    assert d.io.dialogs.asked[-1] == "Replace the project on disk?"
    assert values(load_project(folder)[0]) == [10, 30, 50] and d.io.dirty
    close(d)


def test_two_crashed_projects_are_each_offered_in_turn(qtbot, tmp_path):
    running = []  # two windows, both killed
    for name, fill in (("one", 1), ("two", 2)):
        saved_project(qtbot, tmp_path / "setup", tmp_path / name, fill)
        running.append(editor(qtbot, tmp_path, tmp_path / name))
        add_clip(running[-1], fill + 10)
        running[-1].io.autosave()
    for ed in running:
        crash(ed)
    # No to the newest (two): deleted after asking; then the other is offered
    a = editor(qtbot, tmp_path, **{"Recover unsaved work?": [False, True]})
    assert a.io.dialogs.asked == ["Recover unsaved work?"] * 2
    assert "of two" in a.io.dialogs.texts[0] and "(1 of 2" in a.io.dialogs.texts[0]
    assert values(a.timeline) == [1, 11] and a.io.project_path == tmp_path / "one"
    b = editor(qtbot, tmp_path, project=tmp_path / "two")  # (while a runs: nothing offered)
    assert not b.io.dialogs.asked and values(b.timeline) == [2]  # "two"'s autosave was declined
    add_clip(b, 12)
    b.io.autosave()
    crash(a)  # the recovered work is a's autosave now: offered again, like b's
    crash(b)
    c = editor(qtbot, tmp_path, ask=True)  # Yes to the first: the other is kept for later
    assert c.io.dialogs.asked == ["Recover unsaved work?"]
    assert "more autosave" in said(c, "info")
    first = values(c.timeline)
    c.io.dialogs.answers["confirm_close"] = "discard"  # the first recovered work: dropped
    assert c.io.recover_kept()  # File > Recover autosaves: the other one, now
    assert sorted([first, values(c.timeline)]) == [[1, 11], [2, 12]]
    assert not c.io.recover_kept() and "No autosave" in said(c, "info")
    crash(c)  # leaves the second one recovered in c's autosave
    d = editor(qtbot, tmp_path, ask=True)  # the next start offers the one kept
    assert d.io.dialogs.asked == ["Recover unsaved work?"] and values(d.timeline) != first
    assert sorted([first, values(d.timeline)]) == [[1, 11], [2, 12]]
    close(d)


def test_recovered_work_survives_the_project_given_on_the_command_line(qtbot, tmp_path):
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    saved_project(qtbot, tmp_path / "o", tmp_path / "other", 5)
    a = editor(qtbot, tmp_path, folder)
    add_clip(a, 20)
    a.io.autosave()
    crash(a)
    # `starflow-studio film`, Yes to recover, Discard to any "unsaved changes" question
    b = editor(qtbot, tmp_path, folder, ask=True, confirm_close="discard")
    assert "confirm_close" not in b.io.dialogs.asked
    assert values(b.timeline) == [10, 20] and b.io.dirty and b.io.project_path == folder
    crash(b)
    c = editor(qtbot, tmp_path, tmp_path / "other", ask=True, confirm_close="discard")
    assert "confirm_close" not in c.io.dialogs.asked and values(c.timeline) == [10, 20]
    assert "other was not opened" in said(c, "warning")
    close(c)


def test_a_signal_keeps_unsaved_work_in_the_autosave_and_gives_up_the_lock(qtbot, tmp_path):
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    saved_project(qtbot, tmp_path / "o", tmp_path / "other", 5)
    a = editor(qtbot, tmp_path, folder)
    add_clip(a, 20)  # not autosaved yet
    assert a.io.keep_for_restart("SIGTERM")  # what SIGTERM / SIGHUP do (app/__main__.py)
    a.io.close(clean=False)
    assert not (folder / LOCK).exists()
    o = editor(qtbot, tmp_path / "o")
    o.io.open_project(tmp_path / "other")  # a lock taken for an open still in flight
    assert (tmp_path / "other" / LOCK).exists()
    assert not o.io.keep_for_restart()  # nothing unsaved
    assert not (tmp_path / "other" / LOCK).exists()
    close(o)
    b = editor(qtbot, tmp_path, folder, ask=True)
    assert b.io.dialogs.asked == ["Recover unsaved work?"] and values(b.timeline) == [10, 20]
    assert "closed by SIGTERM (a logout or shutdown)" in b.io.dialogs.texts[0]  # not "a crash"
    assert not said(b, "warning")  # no stale lock to take over
    close(b)


def test_a_crash_is_called_one_and_a_damaged_note_of_the_signal_reads_as_one(qtbot, tmp_path):
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    a = editor(qtbot, tmp_path, folder)
    add_clip(a, 20)
    a.io.autosave()
    crash(a)
    [kept] = (tmp_path / "recovery").iterdir()
    (kept / "ended.json").write_text('{"reason": "x; rm -rf /"}')
    b = editor(qtbot, tmp_path, folder, ask=True)
    assert "did not exit cleanly" in b.io.dialogs.texts[0] and values(b.timeline) == [10, 20]
    close(b)


def test_a_signal_during_the_recovery_question_deletes_nothing(qtbot, tmp_path):
    """A logout while "Recover unsaved work?" is open closes the box: that is no answer."""
    a = editor(qtbot, tmp_path)
    add_clip(a, 20)
    a.io.autosave()
    crash(a)
    b = editor(qtbot, tmp_path, start=False)
    b.io.dialogs.ask = lambda title, text: b.io.keep_for_restart() and False  # the signal
    b.io.start()
    b.io.close(clean=False)
    c = editor(qtbot, tmp_path, ask=True)
    assert c.io.dialogs.asked == ["Recover unsaved work?"] and values(c.timeline) == [20]
    close(c)


def test_an_autosave_whose_editor_pid_was_reused_is_still_offered(qtbot, tmp_path):
    a = editor(qtbot, tmp_path)
    add_clip(a, 20)
    a.io.autosave()
    crash(a)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # the crashed editor's pid now belongs to a process started after it
        [folder] = (tmp_path / "recovery").iterdir()
        info = {"pid": sleeper.pid, "session": "gone", "started": time.time() - 3600}
        (folder / "lock.json").write_text(json.dumps(info))
        d = editor(qtbot, tmp_path, ask=True)
        assert d.io.dialogs.asked == ["Recover unsaved work?"] and values(d.timeline) == [20]
        close(d)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sigterm_during_the_recovery_question_ends_the_editor_with_status_0(tmp_path):
    """The real editor (`python -m app FOLDER`, offscreen) gets SIGTERM while it asks whether to
    recover a crashed editor's autosave: the box closes unanswered, the autosave stays."""
    folder = tmp_path / "film"
    t = Timeline()
    t.insert(0, Clip("c1", t.add_media(np.zeros((2, 48, 64, 3), np.uint8), "video").id, 0, 2))
    save_project(t.snapshot(), folder)
    root = tmp_path / "data" / "STARFlow" / "STARFlow Studio" / "recovery"  # its AppData
    crashed = RecoverySession(root)
    crashed.autosave(t.snapshot(), folder, None)
    crashed.close(clean=False)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (crashed.folder / "lock.json").write_text(json.dumps({"pid": int(gone), "session": "x"}))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "app", str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(300):  # its own recovery folder appears just before the question
            if len(list(root.iterdir())) > 1 or run.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=30)[0]
    finally:
        run.kill()
    assert run.returncode == 0, output
    assert "SIGTERM" in output and "Traceback" not in output
    assert (crashed.folder / "state.json").is_file()  # still offered at the next start
    assert not (folder / LOCK).exists() and list(root.iterdir()) == [crashed.folder]


# ---- damaged project files ------------------------------------------------------------------------
def _damage(doc: dict, case: str) -> bytes | dict:
    clip, media, request = doc["clips"][0], doc["media"][0], doc["clips"][0]["request"]
    if case == "1e999":
        return json.dumps(doc).replace('"fps": 16.0', '"fps": 1e999', 1).encode()
    if case == "nesting":
        return b'{"width": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    if case == "not json":
        return b'{"width": 64,'
    edits = {
        "fps NaN": (doc, "fps", float("nan")),
        "fps negative": (doc, "fps", -16),
        "width text": (doc, "width", "64"),
        "width huge": (doc, "width", 10**12),
        "clips not a list": (doc, "clips", {"a": 1}),
        "start wrong type": (clip, "start", [0]),
        "stop past media": (clip, "stop", 99),
        "frames 1e30": (request, "frames", 1e30),
        "seed 1e30 as int": (request, "seed", 10**30),
        "guidance inf": (request, "guidance", float("inf")),
        "mode unknown": (request, "mode", "x2y"),
        "temperature NaN": (request, "temperature", float("nan")),
        "media id path": (media, "id", "../../etc"),
        "media frames 1e30": (media, "frames", 1e30),
        "playhead 1e30": (doc, "playhead", 1e30),
        "selected number": (doc, "selected", 5),
        "version newer": (doc, "version", 99),
    }
    if case == "take stop text":
        clip["takes"] = [
            dict(clip, request=None),
            {"media": clip["media"], "start": 0, "stop": "2"},
        ]
        return doc
    if case == "job negative":
        clip["job"] = -1
        return doc
    if case == "duplicate clip ids":
        doc["clips"] = [clip, dict(clip), dict(clip)]
        return doc
    target, key, value = edits[case]
    target[key] = value
    return doc


DAMAGE = {  # case: a word of the message naming what is wrong
    "1e999": "fps",
    "nesting": "nested",
    "not json": "JSON",
    "fps NaN": "fps",
    "fps negative": "fps",
    "width text": "width",
    "width huge": "width",
    "clips not a list": "clips",
    "start wrong type": "clips[0].start",
    "stop past media": "clips[0] range",
    "frames 1e30": "clips[0].request.frames",
    "seed 1e30 as int": "clips[0].request.seed",
    "guidance inf": "clips[0].request.guidance",
    "mode unknown": "clips[0].request.mode",
    "temperature NaN": "clips[0].request.temperature",
    "media id path": "media[0].id",
    "media frames 1e30": "media[0].frames",
    "playhead 1e30": "playhead",
    "selected number": "selected",
    "version newer": "version",
    "duplicate clip ids": "appears twice",
    "take stop text": "clips[0].takes[1].stop",
    "job negative": "clips[0].job",
}


def test_damaged_project_files_are_refused_at_open_naming_the_field(qtbot, tmp_path):
    folder = tmp_path / "film"
    saved_project(qtbot, tmp_path, folder, 10)
    good = json.loads((folder / PROJECT_FILE).read_text())
    ed = editor(qtbot, tmp_path)
    add_clip(ed, 7)
    ed.io.save_as(tmp_path / "current")
    wait(qtbot, ed)
    for case, word in DAMAGE.items():
        damaged = _damage(json.loads(json.dumps(good)), case)
        if isinstance(damaged, dict):
            damaged = json.dumps(damaged).encode()  # NaN and Infinity as Python writes them
        (folder / PROJECT_FILE).write_bytes(damaged)
        with pytest.raises(EngineError, match="^damaged project: ") as caught:
            load_project(folder)
        message = str(caught.value)
        assert word in message and "\n" not in message and len(message) < 200, (case, message)
        ed.io.open_project(folder)  # the editor says the same and keeps what it had
        wait(qtbot, ed)
        shown = ed.io.messages.errors()[-1].text
        assert "damaged project: " in shown and "unexpected" not in shown, (case, shown)
        assert values(ed.timeline) == [7] and ed.io.project_path == tmp_path / "current"
    close(ed)


WEIRD = [None, "", "x", -1, 0, 2**70, 1e308, float("inf"), float("nan"), [], {}, True, [1], 3.5]


def _leaves(d, path=()):
    """(path, value) of every value in a JSON document."""
    yield path, d
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        yield from _leaves(v, (*path, k))


def test_random_damage_to_project_json_loads_or_is_refused_in_one_line(tmp_path):
    """300 project.json files with one or two values replaced by odd ones (or removed): each
    loads into a usable timeline or is refused as a damaged project, never anything else."""
    t = Timeline()
    m1 = t.add_media(np.zeros((4, 48, 64, 3), np.uint8), "generated")
    m2 = t.add_media(np.zeros((3, 48, 64, 3), np.uint8), "video")
    r = ClipRequest("extend", "p", 3, frames=4, source=SourceRef(m2.id, 0, 2), temperature=0.5)
    t.insert(0, Clip("c1", m1.id, 0, 4, "a", r, job=2).with_new_take(Take(m2.id, 0, 3, None, 1)))
    t.insert(1, Clip("c2", m2.id, 1, 3, "b"))
    folder = tmp_path / "film"
    save_project(t.snapshot(), folder)
    good = json.loads((folder / PROJECT_FILE).read_text())
    paths = [p for p, _ in _leaves(good) if p]
    rng, loaded = random.Random(31), 0
    for _ in range(300):
        doc = json.loads(json.dumps(good))
        for path in rng.sample(paths, rng.choice([1, 1, 2])):
            parent = doc
            with contextlib.suppress(KeyError, IndexError, TypeError):
                for k in path[:-1]:
                    parent = parent[k]
                if isinstance(parent, dict) and rng.random() < 0.15:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = rng.choice(WEIRD)
        (folder / PROJECT_FILE).write_text(json.dumps(doc))
        try:
            timeline = load_project(folder)[0]
        except EngineError as exc:
            assert str(exc).startswith(("damaged project: ", "project media file")), str(exc)
            assert "\n" not in str(exc)
            continue
        loaded += 1
        assert math.isfinite(timeline.fps) and timeline.fps > 0
        for clip in timeline.clips:
            assert len(timeline.clip_frames(clip.id)) == clip.length > 0
            assert all(take.media in timeline.media for take in clip.all_takes())
    assert 0 < loaded < 300  # some changes are harmless (a name), most are refused


def test_media_claiming_more_frames_than_memory_holds_are_refused_before_reading(
    tmp_path, monkeypatch
):
    """A few-kilobyte media file whose header claims 10^6 frames at 1280x720 (2.8 TB); media
    that would take more than half the memory."""
    import app.state.project as project

    t = Timeline(1280, 720)
    t.insert(0, Clip("c1", t.add_media(np.zeros((1, 720, 1280, 3), np.uint8), "video").id, 0, 1))
    save_project(t.snapshot(), tmp_path / "film")
    doc = json.loads((tmp_path / "film" / PROJECT_FILE).read_text())
    del doc["media"][0]["frames"]
    (tmp_path / "film" / PROJECT_FILE).write_text(json.dumps(doc))
    [npz] = (tmp_path / "film" / "media").glob("*.npz")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 720, 1280, 3)}
    )
    with zipfile.ZipFile(npz, "w") as z, z.open("frames.npy", "w") as f:
        f.write(header.getvalue() + bytes(10**6))
    with pytest.raises(EngineError, match="cut short"):
        load_project(tmp_path / "film")
    save_project(t.snapshot(), tmp_path / "small")
    monkeypatch.setattr(project, "_memory", lambda: 4 * 720 * 1280)  # under 2 frames' worth
    with pytest.raises(EngineError, match="media need 2.6 MB of memory"):
        load_project(tmp_path / "small")


def test_job_numbers_and_takes_survive_save_and_load(tmp_path):
    t = Timeline()
    media = [t.add_media(np.full((3, 48, 64, 3), v, np.uint8), "generated") for v in (1, 2)]
    request = ClipRequest(prompt="p", seed=7)
    clip = Clip("c1", media[0].id, 0, 3, "one", request, job=4)
    clip = clip.with_new_take(Take(media[1].id, 1, 3, request, 5), active=True)
    t.insert(0, clip)
    save_project(t.snapshot(), tmp_path / "film")
    [loaded] = load_project(tmp_path / "film")[0].clips
    assert loaded == clip and loaded.job == 5 and len(loaded.takes) == 2


# ---- permissions ------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_project_files_and_autosaves_follow_the_umask(qtbot, tmp_path, umask):
    old = os.umask(umask)
    try:
        ed = editor(qtbot, tmp_path)
        add_clip(ed, 3)
        ed.io.save_as(tmp_path / "film")
        wait(qtbot, ed)
        add_clip(ed, 4)
        ed.io.autosave()
        wait(qtbot, ed)
        files = [p for p in (tmp_path / "film").rglob("*") if p.is_file()] + [
            p for p in (tmp_path / "recovery").rglob("*") if p.is_file()
        ]
        assert len(files) >= 7  # project.json, 1 medium, lock; autosave: 2 + media + state
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
        close(ed)
    finally:
        os.umask(old)
