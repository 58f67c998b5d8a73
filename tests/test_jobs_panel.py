"""The Jobs panel in the real window: running and waiting jobs in view, names elided with the
whole name as a tooltip, numbers that go on after reopening, time left, pause / resume, and a
notice when a long job ends (issue 32, defect 8 and the queue features)."""

from __future__ import annotations

import itertools
import time

import pytest
from PySide6.QtCore import Qt

import engine.api
from app.state.jobs import Job, JobQueue, JobState, format_eta
from app.state.request import ClipRequest
from app_utils import close_editor, engine_free_window, open_editor
from engine.api import GenerateRequest

PROMPT = "a large red circle moves right on a black background"
LONG = "a small blue triangle moves up and down on a white background"


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window over a studio whose engine never starts (jobs are driven by hand)."""
    w = engine_free_window(qtbot, tmp_path, (1280, 720))
    yield w
    w.shutdown()


def row_of(view, job) -> int:
    """The table row showing `job` (-1: none)."""
    for row in range(view.table.rowCount()):
        if view.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == job.id:
            return row
    return -1


def row_in_view(view, row: int) -> bool:
    table = view.table
    rect = table.visualRect(table.model().index(row, 1))
    return rect.isValid() and table.viewport().rect().contains(rect)


def test_running_and_waiting_jobs_stay_in_view_with_whole_names_as_tips(qtbot, window):
    s, view = window.studio, window.job_queue
    jobs = []
    for i in range(8):
        s.draft.set(prompt=f"{PROMPT} {i}" if i < 6 else LONG)
        jobs.append(s.generate())
    for job in jobs[:6]:  # six finished jobs came first; then one runs and one waits
        s.jobs.set_state(job, JobState.RUNNING)
        s.jobs.set_state(job, JobState.DONE)
    running, waiting = jobs[6], jobs[7]
    s.jobs.set_state(running, JobState.RUNNING)
    qtbot.wait(50)

    assert row_in_view(view, row_of(view, running)) and row_in_view(view, row_of(view, waiting))
    assert row_of(view, running) == 0 and row_of(view, waiting) == 1
    assert row_of(view, jobs[5]) == 2  # then the newest finished job
    title = view.table.item(0, 1)
    assert title.text() == running.title and running.title in title.toolTip()
    assert view.table.textElideMode() == Qt.TextElideMode.ElideRight
    assert not view.table.wordWrap()
    # finishing it moves it below the waiting job
    s.jobs.set_state(running, JobState.DONE)
    assert row_of(view, waiting) == 0 and row_of(view, running) == 1


def test_time_left_is_shown_for_the_running_job(qtbot, window, monkeypatch):
    s, view = window.studio, window.job_queue
    s.draft.set(prompt=PROMPT, frames=20)
    job = s.generate()
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    s.jobs.set_state(job, JobState.RUNNING)
    clock[0] += 10.0
    s.jobs.progress(job, 5, 20)  # 0.5 frames/s: 30 s left
    assert job.eta == pytest.approx(30.0)
    assert view.progress_of(job.id)[2] == "5/20 · 30 s"
    assert "30 s left" in view.table.item(0, 1).toolTip()
    assert format_eta(185) == "3 min 05 s" and format_eta(3720) == "1 h 02 min"


def test_job_numbers_go_on_after_the_project_is_reopened(qtbot, tmp_path, monkeypatch):
    ed = open_editor(qtbot, tmp_path / "a")
    s = ed.studio
    s.draft.set(prompt=PROMPT, frames=3)
    for _ in range(2):
        with qtbot.waitSignal(s.job_landed, timeout=60_000):
            s.generate()
    numbers = [j.number for j in s.jobs.jobs]
    assert numbers == [1, 2]
    folder = tmp_path / "project"
    s.save_as(folder)
    qtbot.waitUntil(lambda: not s.busy, timeout=30_000)
    close_editor(ed)

    monkeypatch.setattr(engine.api, "_ids", itertools.count(1))  # as a new process starts
    ed = open_editor(qtbot, tmp_path / "b", project=folder)
    s = ed.studio
    qtbot.waitUntil(lambda: len(s.timeline.clips) == 2, timeout=30_000)
    s.draft.set(prompt=PROMPT, frames=3)
    with qtbot.waitSignal(s.job_landed, timeout=60_000):
        job = s.generate()
    assert job.number == 3
    assert ed.window.job_queue.table.item(0, 0).text() == "3"
    assert [c.job for c in s.timeline.clips] == [1, 2, 3]
    close_editor(ed)


def test_pause_holds_waiting_jobs_and_resume_runs_them(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    s, view = ed.studio, ed.window.job_queue
    qtbot.mouseClick(view.pause, Qt.MouseButton.LeftButton)
    assert s.jobs.paused and view.pause.text() == "Resume"
    s.draft.set(prompt=PROMPT, frames=3)
    job = s.generate()
    qtbot.wait(300)
    assert job.state == JobState.QUEUED and not s.timeline.clips
    assert "paused" in s.messages.latest().text
    with qtbot.waitSignal(s.job_landed, timeout=60_000):
        qtbot.mouseClick(view.pause, Qt.MouseButton.LeftButton)
    assert job.state == JobState.DONE and len(s.timeline.clips) == 1
    assert view.pause.text() == "Pause"
    close_editor(ed)


def test_a_long_job_is_announced_when_it_ends(qtbot, tmp_path):
    ed = open_editor(qtbot, tmp_path)
    s, view = ed.studio, ed.window.job_queue
    s.draft.set(prompt=PROMPT, frames=3)
    view.long_job_s = 3600.0  # a short job: no notice
    told = []
    view.long_job_ended.connect(told.append)
    with qtbot.waitSignal(s.job_landed, timeout=60_000):
        s.generate()
    assert told == []
    view.long_job_s = 0.0
    with qtbot.waitSignal(view.long_job_ended, timeout=60_000):
        job = s.generate()
    assert told[0].startswith(f"Job #{job.number} done after")
    assert ed.window.statusBar().currentMessage() == told[0]
    close_editor(ed)


def test_queue_order_and_numbers_without_a_window():
    q = JobQueue()
    record = ClipRequest("t2v", PROMPT)
    jobs = [q.add(Job(record, GenerateRequest(PROMPT, frames=3), f"j{i}")) for i in range(4)]
    q.set_state(jobs[0], JobState.RUNNING)
    q.set_state(jobs[0], JobState.DONE)
    q.set_state(jobs[1], JobState.RUNNING)
    assert [j.number for j in q.ordered()] == [2, 3, 4, 1]
    q.set_paused(True)
    assert q.next_queued() is None
    q.set_paused(False)
    assert q.next_queued() is jobs[2]
    q.continue_numbers(10)
    assert q.add(Job(record, GenerateRequest(PROMPT, frames=3), "j")).number == 11
