"""SIGTERM (preemption) as a flag the training loop polls: save at the current step, exit 0.

The handler is installed as early as possible (the command line installs it before importing
JAX), so that a SIGTERM during startup, restore or compilation is never the default
"terminate" (exit 143): the loop sees the flag at its next check and stops there, saving only
if it has taken a step since the last checkpoint.
"""

from __future__ import annotations

import signal


class StopFlag:
    """`requested` turns True on SIGTERM. One per process; `acquire`/`release` nest."""

    _current: StopFlag | None = None

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        self._users = 0

    def _handle(self, signum, frame):
        self.requested = True

    @classmethod
    def acquire(cls) -> StopFlag:
        """The process's flag, installing the handler on first use."""
        if cls._current is None:
            cls._current = StopFlag()
        cls._current._users += 1
        return cls._current

    def release(self) -> None:
        """The last user puts the previous handler back (tests run `train` in-process)."""
        self._users -= 1
        if self._users <= 0 and StopFlag._current is self:
            signal.signal(signal.SIGTERM, self._previous)
            StopFlag._current = None


def install() -> StopFlag:
    """For the command line: the handler stays for the life of the process."""
    return StopFlag.acquire()
