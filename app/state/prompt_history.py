"""The prompts of a project, for recall in the inspector (Up / Down, or the History menu). Qt-free.

The history is the prompts of the project's clips (saved with them in project.json, so each
project has its own), then those of this session's jobs (failed and cancelled ones too), then
drafts that a recall or a clip's prompt replaced; each once, the newest last.

It also tells the draft when one of its requests is queued (`Draft.sent`): the typed prompt is
then no longer unsent, and the seed moves on as the draft's seed mode says.
"""

from __future__ import annotations

from .draft import Draft
from .jobs import JobQueue
from .timeline import Timeline

MAX_ENTRIES = 200


class PromptHistory:
    def __init__(self, draft: Draft, timeline: Timeline, jobs: JobQueue) -> None:
        self.draft, self.timeline, self.jobs = draft, timeline, jobs
        self._seen = max((j.id for j in jobs.jobs), default=0)  # the newest job already seen
        self._stash: list[str] = []  # replaced drafts, this session
        self._cursor: int | None = None  # the entry shown while recalling (None: the draft)
        self._kept = ""  # the draft's text when recall began
        jobs.events.changed.connect(self._on_jobs)

    def entries(self) -> list[str]:
        """Every prompt once, oldest first."""
        prompts = [c.request.prompt for c in self.timeline.clips if c.request is not None]
        prompts += [j.record.prompt for j in self.jobs.jobs]
        prompts += self._stash
        unique = list(dict.fromkeys(reversed([p for p in prompts if p.strip()])))
        return unique[::-1][-MAX_ENTRIES:]

    def stash(self, text: str) -> None:
        """Keep a draft that is about to be replaced (it stays recallable)."""
        if text.strip():
            if text in self._stash:
                self._stash.remove(text)
            self._stash.append(text)

    def recall(self, step: int) -> str | None:
        """Step through the history: -1 older, +1 newer (past the newest: the draft as it was).
        Returns the text to show, or None when there is nothing further that way."""
        entries = self.entries()
        if self._cursor is None:
            if step > 0 or not entries:
                return None
            self._kept = self.draft.prompt
            start = len(entries)
            if entries[-1] == self._kept:  # the draft is the newest entry: go past it
                start -= 1
            self._cursor = start
        target = self._cursor + step
        if target < 0:
            return None
        if target >= len(entries):
            self._cursor = None
            return self._kept
        self._cursor = target
        return entries[target]

    def reset(self) -> None:
        """The user typed: recall starts again from the newest entry."""
        self._cursor = None

    def _on_jobs(self) -> None:
        for job in self.jobs.jobs:
            if job.id > self._seen:
                self._seen = job.id
                self.draft.sent(job.record)
