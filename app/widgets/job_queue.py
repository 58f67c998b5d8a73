"""The job queue: waiting, running and recent jobs with progress; reorder and remove."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..state.jobs import Job, JobQueue, JobState

STATE_TEXT = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
    JobState.DONE: "done",
    JobState.CANCELLED: "cancelled",
    JobState.FAILED: "failed",
}


class JobQueueView(QWidget):
    """A view of the JobQueue; reorders waiting jobs itself, asks to remove (or cancel) one."""

    remove_requested = Signal(int)  # job id

    def __init__(self, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["#", "Job", "Progress"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        self.table.setColumnWidth(2, 110)
        self.table.setMinimumHeight(64)  # header and one row; the inspector above needs the room

        self.up = QToolButton(text="▲", toolTip="Run earlier")
        self.down = QToolButton(text="▼", toolTip="Run later")
        self.remove = QToolButton(
            text="Remove", toolTip="Remove a waiting job, or cancel the running one"
        )
        self.clear = QToolButton(text="Clear finished")
        self.up.clicked.connect(lambda: self._move(-1))
        self.down.clicked.connect(lambda: self._move(1))
        self.remove.clicked.connect(self._remove)
        self.clear.clicked.connect(self.jobs.clear_finished)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for b in (self.up, self.down, self.remove):
            bar.addWidget(b)
        bar.addStretch(1)
        bar.addWidget(self.clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.table)
        layout.addLayout(bar)

        self.jobs.events.changed.connect(self.rebuild)
        self.jobs.events.updated.connect(self._update_job)
        self.rebuild()

    def selected_job(self) -> Job | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return self.jobs.get(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def select_job(self, job_id: int) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == job_id:
                self.table.selectRow(row)

    def _move(self, delta: int) -> None:
        job = self.selected_job()
        if job is not None:
            self.jobs.move(job.id, delta)
            self.select_job(job.id)

    def _remove(self) -> None:
        job = self.selected_job()
        if job is not None:
            self.remove_requested.emit(job.id)

    def rebuild(self) -> None:
        selected = self.selected_job()
        self.table.setRowCount(len(self.jobs.jobs))
        for row, job in enumerate(self.jobs.jobs):
            number = QTableWidgetItem(str(job.id))
            number.setData(Qt.ItemDataRole.UserRole, job.id)
            self.table.setItem(row, 0, number)
            title = QTableWidgetItem(job.title)
            title.setToolTip(job.title)
            self.table.setItem(row, 1, title)
            bar = QProgressBar()
            bar.setTextVisible(True)
            self.table.setCellWidget(row, 2, bar)
            self._fill(row, job)
        if selected is not None:
            self.select_job(selected.id)

    def _row(self, job: Job) -> int:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == job.id:
                return row
        return -1

    def _update_job(self, job: Job) -> None:
        row = self._row(job)
        if row >= 0:
            self._fill(row, job)

    def _fill(self, row: int, job: Job) -> None:
        bar = self.table.cellWidget(row, 2)
        bar.setMaximum(max(job.total, 1))
        bar.setValue(min(job.done, max(job.total, 1)))
        state = STATE_TEXT[job.state]
        fps = f" · {job.fps:.1f} fps" if job.fps else ""
        bar.setFormat(f"{job.done}/{job.total}{fps}" if job.state == JobState.RUNNING else state)
        tip = f"{state}: {job.message}" if job.message else state
        if job.state.finished and job.fps:
            tip += f" ({job.done} frames, {job.fps:.1f} fps)"
        self.table.item(row, 1).setToolTip(f"{job.title}\n{tip}")
        dim = job.state.finished
        for col in (0, 1):
            item = self.table.item(row, col)
            item.setForeground(self.palette().placeholderText() if dim else self.palette().text())

    def progress_of(self, job_id: int) -> tuple[int, int, str]:
        """(value, maximum, text) of a job's progress bar (for tests and accessibility)."""
        job = self.jobs.get(job_id)
        row = self._row(job) if job else -1
        if row < 0:
            return 0, 0, ""
        bar = self.table.cellWidget(row, 2)
        return bar.value(), bar.maximum(), bar.text()
