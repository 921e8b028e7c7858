"""The broker's one clock and one timer heap.

Every deadline (message TTL, queue expiry, delayed messages, consumer timeouts) is a
`Timer` here; the transport sleeps until `next_deadline()` and then calls `run_due()`.
With a `VirtualClock` the broker's time can also be moved on at once (`advance`): what
falls due on the way runs deadline by deadline, in order, as if the time had passed.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable


class Timer:
    """A scheduled callback; `cancel` makes it a no-op."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[float], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Real time plus an offset that `Timers.advance` moves forward (never back)."""

    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def wall(self) -> float:
        return time.time() + self.offset


class Timers:
    """Deadlines of the whole broker, earliest first."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0
        self.on_earlier: Callable[[], None] = lambda: None

    def now(self) -> float:
        return self.clock()

    def call_at(self, when: float, callback: Callable[[float], None]) -> Timer:
        """Run `callback(now)` once the clock reaches `when`."""
        timer = Timer(when, callback)
        earliest = self._heap[0][0] if self._heap else None
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        if earliest is None or when < earliest:
            self.on_earlier()
        return timer

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def advance(self, seconds: float, settle: Callable[[], None]) -> None:
        """Move a `VirtualClock` on by `seconds`: stop at each deadline on the way, run
        what is due there, then `settle()` (deliver what became ready) before the next."""
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            raise TypeError("this broker runs on the real clock; it cannot be advanced")
        if seconds < 0:
            raise ValueError("the clock cannot go back")
        final = clock.offset + seconds
        target = clock() + seconds
        while (deadline := self.next_deadline()) is not None and deadline <= target:
            clock.offset = max(clock.offset, deadline - time.monotonic())
            self.run_due(clock())
            settle()
        clock.offset = max(clock.offset, final)
        self.run_due(clock())
        settle()

    def run_due(self, now: float) -> None:
        """Run every timer whose time has come, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[2]
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback(now)
