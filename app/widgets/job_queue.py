"""The job queue: the running job first, then the waiting ones in the order they run, then the
finished ones (newest first), with progress and the time left; reorder, remove, pause and resume.
A job that ran long tells the user when it ends (taskbar alert, tray message where there is a
tray)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QMainWindow,
    QProgressBar,
    QStyle,
    QSystemTrayIcon,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..state.jobs import Job, JobQueue, JobState, format_eta

STATE_TEXT = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
    JobState.DONE: "done",
    JobState.CANCELLED: "cancelled",
    JobState.FAILED: "failed",
}
ROWS_SHOWN = 3  # the table's minimum height shows this many rows


class JobQueueView(QWidget):
    """A view of the JobQueue; reorders waiting jobs and pauses the queue itself, asks to remove
    (or cancel) one."""

    remove_requested = Signal(int)  # job id
    long_job_ended = Signal(str)  # the notification's text

    long_job_s = 20.0  # a job that ran at least this long is announced when it ends

    def __init__(self, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self._states: dict[int, JobState] = {}  # what each row shows, to re-sort on a change
        self._tray: QSystemTrayIcon | None = None
        self._told: set[int] = set()  # jobs whose end was announced
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["#", "Job", "Progress"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        self.table.setColumnWidth(2, 124)
        rows = self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(header.sizeHint().height() + ROWS_SHOWN * rows + 4)

        self.up = QToolButton(text="▲", toolTip="Run earlier")
        self.down = QToolButton(text="▼", toolTip="Run later")
        self.remove = QToolButton(
            text="Remove", toolTip="Remove a waiting job, or cancel the running one"
        )
        self.pause = QToolButton(
            text="Pause",
            checkable=True,
            toolTip="Pause the queue: the running job finishes, the waiting ones wait",
        )
        self.clear = QToolButton(text="Clear finished", toolTip="Remove the finished jobs")
        self.up.clicked.connect(lambda: self._move(-1))
        self.down.clicked.connect(lambda: self._move(1))
        self.remove.clicked.connect(self._remove)
        self.pause.toggled.connect(self.jobs.set_paused)
        self.clear.clicked.connect(self.jobs.clear_finished)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for b in (self.up, self.down, self.remove, self.pause):
            bar.addWidget(b)
        bar.addStretch(1)
        bar.addWidget(self.clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.table)
        layout.addLayout(bar)

        self.jobs.events.changed.connect(self.rebuild)
        self.jobs.events.updated.connect(self._update_job)
        self.jobs.events.paused.connect(self._show_paused)
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

    def _show_paused(self, paused: bool) -> None:
        self.pause.setChecked(paused)
        self.pause.setText("Resume" if paused else "Pause")

    def rebuild(self) -> None:
        selected = self.selected_job()
        jobs = self.jobs.ordered()
        self.table.setRowCount(len(jobs))
        self._states = {}
        for row, job in enumerate(jobs):
            number = QTableWidgetItem(str(job.number))
            number.setData(Qt.ItemDataRole.UserRole, job.id)
            number.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(row, 0, number)
            self.table.setItem(row, 1, QTableWidgetItem(job.title))
            bar = QProgressBar()
            bar.setTextVisible(True)
            self.table.setCellWidget(row, 2, bar)
            self._fill(row, job)
        if selected is not None:
            self.select_job(selected.id)
        self.table.scrollToTop()  # the running and next jobs are the first rows

    def _row(self, job: Job) -> int:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == job.id:
                return row
        return -1

    def _update_job(self, job: Job) -> None:
        row = self._row(job)
        if row >= 0 and self._states.get(job.id) != job.state:
            self.rebuild()  # it moves: running to the top, finished below the waiting ones
        elif row >= 0:
            self._fill(row, job)
        if job.state.finished and job.seconds >= self.long_job_s and job.id not in self._told:
            self._told.add(job.id)
            QTimer.singleShot(0, self, lambda: self._notify(job))  # after the job's own messages

    def _fill(self, row: int, job: Job) -> None:
        self._states[job.id] = job.state
        bar = self.table.cellWidget(row, 2)
        bar.setMaximum(max(job.total, 1))
        bar.setValue(min(job.done, max(job.total, 1)))
        state = STATE_TEXT[job.state]
        if job.state == JobState.RUNNING:
            eta = job.eta
            left = f" · {format_eta(eta)}" if eta is not None else ""
            bar.setFormat(f"{job.done}/{job.total}{left}")
        else:
            bar.setFormat(state)
        tip = f"{state}: {job.message}" if job.message else state
        if job.state == JobState.RUNNING and job.fps:
            tip += f", {job.fps:.1f} frames/s"
            if job.eta is not None:
                tip += f", about {format_eta(job.eta)} left"
        if job.state.finished and job.fps:
            tip += f" ({job.done} frames, {job.fps:.1f} fps, {format_eta(job.seconds)})"
        text = f"Job #{job.number}: {job.title}\n{tip}"
        dim = job.state.finished
        for col in (0, 1):
            item = self.table.item(row, col)
            item.setToolTip(text)
            item.setForeground(self.palette().placeholderText() if dim else self.palette().text())
        bar.setToolTip(text)

    def _notify(self, job: Job) -> None:
        """Tell the user a long job ended, even when the editor is in the background."""
        how = STATE_TEXT[job.state]
        text = f"Job #{job.number} {how} after {format_eta(job.seconds)}: {job.title}"
        window = self.window()
        QApplication.alert(window, 0)
        if isinstance(window, QMainWindow):
            window.statusBar().showMessage(text, 10_000)
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            if self._tray is None:
                icon = window.windowIcon()
                if icon.isNull():
                    icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
                self._tray = QSystemTrayIcon(icon, self)
            self._tray.show()
            self._tray.showMessage("STARFlow Studio", text)
        self.long_job_ended.emit(text)

    def row_of(self, job_id: int) -> int:
        """The table row showing a job (-1: none)."""
        job = self.jobs.get(job_id)
        return self._row(job) if job else -1

    def progress_of(self, job_id: int) -> tuple[int, int, str]:
        """(value, maximum, text) of a job's progress bar (for tests and accessibility)."""
        row = self.row_of(job_id)
        if row < 0:
            return 0, 0, ""
        bar = self.table.cellWidget(row, 2)
        return bar.value(), bar.maximum(), bar.text()
