"""The commands written to an ssh I/O server, waiting their turn.

Commands run one at a time, in the order written; a write only queues its command and
returns, so a writer never waits for a slow remote. The queue is bounded: a write beyond
`maxsize` fails at once rather than piling up work the remote may never catch up with.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio


class QueueFull(Exception):
    """The queue holds `maxsize` jobs already."""


@dataclass(eq=False)
class Job:
    """One command: ``exec``, ``get``, ``put``, ``close``, ``poll`` or ``switch``."""

    kind: str
    point: str
    """The full name of the point written, for logs (``ssh.exec.5``)."""
    value: str = ""
    timeout: float = 30.0
    queued_at: float = field(default_factory=anyio.current_time)
    reply: Callable[[Any], None] | None = None
    """For `ioplex_ssh.run`: called with the result instead of setting the points."""
    spec: Any = None
    """For ``poll`` and ``switch``: the `polled.CommandSpec` of the configured command."""


class JobQueue:
    """A bounded FIFO of jobs with one consumer (the instance's worker)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._jobs: deque[Job] = deque()
        self._ready = anyio.Event()

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, job: Job) -> None:
        """Queue `job`, or raise QueueFull."""
        if len(self._jobs) >= self.maxsize:
            raise QueueFull(job)
        self._jobs.append(job)
        self._ready.set()

    def put_back(self, job: Job) -> None:
        """Return a job taken by `get` to the head of the queue (its turn is not over)."""
        self._jobs.appendleft(job)
        self._ready.set()

    async def get(self) -> Job:
        """The oldest job, waiting for one if there is none."""
        while not self._jobs:
            if self._ready.is_set():
                self._ready = anyio.Event()
            await self._ready.wait()
        return self._jobs.popleft()

    def snapshot(self) -> list[Job]:
        """The queued jobs, oldest first."""
        return list(self._jobs)

    def pending(self, predicate: Callable[[Job], bool]) -> bool:
        """Whether a queued job matches `predicate`."""
        return any(predicate(job) for job in self._jobs)

    def remove_if(self, predicate: Callable[[Job], bool]) -> list[Job]:
        """Take out and return the queued jobs `predicate` selects, keeping the others' order."""
        taken = [job for job in self._jobs if predicate(job)]
        if taken:
            self._jobs = deque(job for job in self._jobs if not predicate(job))
        return taken
