"""The bytes written on one SSH connection and not yet answered, for all its channels together.

Every channel's requests share one TCP stream, and the stream is a queue: a rename, an open or
a mkdir sent behind megabytes of photo data waits until all of it has crossed the uplink. With
eight uploads handing their whole files to the socket at once, on a 4G uplink each small
request waited for seconds; every upload then finished together, and the link stood idle while
they all renamed and opened their next file at once. Capping the bytes in flight keeps the
queue short (a small request waits at most `limit` bytes' time), uploads finish one after the
other, and each one's round trips are hidden behind the others' bytes. The cap is above the
bandwidth-delay product of the links fieldsync meets (80 KB on 4G; 1 MiB is 100 Mbit/s at
80 ms), so a lone upload still fills the link.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class InFlight:
    """A shared allowance of unanswered bytes. A writer over it first reads the answers to its
    own oldest writes (which frees bytes); one with nothing of its own in flight waits for
    the others to free some. Whoever holds bytes is writing or reading its answers, so the
    allowance always comes back (a broken connection raises in those reads)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._used = 0
        self._freed = threading.Condition()

    def take(self, nbytes: int, answer_own: Callable[[], int]) -> None:
        """Reserve `nbytes`; `answer_own()` reads the answer to one of the caller's own writes
        and returns its size (0 when the caller has none in flight)."""
        while True:
            with self._freed:
                if self._fits(nbytes):
                    self._used += nbytes
                    return
            freed = answer_own()
            if freed:
                self.give(freed)
                continue
            with self._freed:
                if not self._fits(nbytes):
                    # A timeout only as a guard: every give() notifies.
                    self._freed.wait(1.0)

    def give(self, nbytes: int) -> None:
        if nbytes:
            with self._freed:
                self._used = max(0, self._used - nbytes)
                self._freed.notify_all()

    def _fits(self, nbytes: int) -> bool:
        return self._used == 0 or self._used + nbytes <= self.limit
