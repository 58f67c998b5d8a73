"""User-facing messages (errors, warnings, notices): a Qt-free log the message area shows.

Nothing here blocks: tests read `MessageLog.items` / `latest()` directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

from .events import Event

log = logging.getLogger("app")
LEVELS = ("info", "warning", "error")
KEEP = 200


@dataclass(frozen=True)
class Message:
    level: str
    text: str
    time: float = field(default_factory=time.time)


class MessageLog:
    def __init__(self) -> None:
        self.items: list[Message] = []
        self.events = SimpleNamespace(added=Event("added"), dismissed=Event("dismissed"))

    def add(self, level: str, text: str) -> Message:
        if level not in LEVELS:
            raise ValueError(level)
        msg = Message(level, text)
        self.items = [*self.items[-(KEEP - 1) :], msg]
        log.log(
            {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}[level],
            "%s",
            text,
        )
        self.events.added.emit(msg)
        return msg

    def info(self, text: str) -> Message:
        return self.add("info", text)

    def warning(self, text: str) -> Message:
        return self.add("warning", text)

    def error(self, text: str) -> Message:
        return self.add("error", text)

    def latest(self, level: str | None = None) -> Message | None:
        return next((m for m in reversed(self.items) if level is None or m.level == level), None)

    def errors(self) -> list[Message]:
        return [m for m in self.items if m.level == "error"]

    def dismiss(self, msg: Message) -> None:
        if msg in self.items:
            self.items.remove(msg)
            self.events.dismissed.emit(msg)
