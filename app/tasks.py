"""Background file work (decoding imports, saving, exporting) off the GUI thread.

One worker at a time, in submission order, on a private QThreadPool; results and errors
come back as callbacks on the GUI thread:

    tasks.submit("export clip.mp4", work, on_done=lambda result: ..., on_error=lambda msg: ...)

EngineError messages reach `on_error` as they are; other exceptions are logged with their
traceback and reported as "unexpected error".
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.api import EngineError

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(int, object)
    error = Signal(int, str)


class _Task(QRunnable):
    def __init__(self, task_id: int, name: str, work: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.task_id, self.name, self.work, self.relay = task_id, name, work, relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self.work()
        except EngineError as exc:
            self.relay.error.emit(self.task_id, str(exc))
        except MemoryError:
            self.relay.error.emit(self.task_id, f"{self.name}: out of memory")
        except Exception as exc:  # noqa: BLE001 - reported to the user, logged in full
            log.exception("%s failed", self.name)
            self.relay.error.emit(
                self.task_id, f"{self.name}: unexpected error: {type(exc).__name__}: {exc}"
            )
        else:
            self.relay.done.emit(self.task_id, result)


class TaskRunner(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.pool.setExpiryTimeout(2000)
        self._relay = _Relay(self)
        self._relay.done.connect(self._done)
        self._relay.error.connect(self._error)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, Callable | None, Callable | None]] = {}

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def submit(
        self,
        name: str,
        work: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> int:
        task_id = next(self._ids)
        self._pending[task_id] = (name, on_done, on_error)
        self.pool.start(_Task(task_id, name, work, self._relay))
        return task_id

    def _done(self, task_id: int, result: object) -> None:
        _, on_done, _ = self._pending.pop(task_id, (None, None, None))
        if on_done is not None:
            on_done(result)

    def _error(self, task_id: int, message: str) -> None:
        name, _, on_error = self._pending.pop(task_id, (None, None, None))
        if on_error is not None:
            on_error(message)
        else:
            log.error("%s: %s", name, message)

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until queued work has run (shutdown, tests); results are delivered on return
        to the event loop."""
        return self.pool.waitForDone(timeout_ms)
