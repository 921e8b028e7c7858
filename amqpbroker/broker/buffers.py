"""The ready messages of a queue, in delivery order.

`FifoBuffer` is publish order. Requeued messages go back to their original position
(RabbitMQ's behaviour): they wait in `returned`, sorted by sequence number, and always
precede `ready`, because every message handed out was older than every one still waiting.
`PriorityBuffer` (x-max-priority) is highest priority first, publish order within a level.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Iterator

from amqpbroker.broker.message import Entry


class FifoBuffer:
    __slots__ = ("ready", "returned")

    def __init__(self) -> None:
        self.ready: deque[Entry] = deque()
        self.returned: list[Entry] = []

    def __len__(self) -> int:
        return len(self.ready) + len(self.returned)

    def __iter__(self) -> Iterator[Entry]:
        yield from self.returned
        yield from self.ready

    def push(self, entry: Entry) -> None:
        self.ready.append(entry)

    def requeue(self, entry: Entry) -> None:
        bisect.insort(self.returned, entry)

    def pop(self) -> Entry | None:
        if self.returned:
            return self.returned.pop(0)
        return self.ready.popleft() if self.ready else None

    def peek(self) -> Entry | None:
        if self.returned:
            return self.returned[0]
        return self.ready[0] if self.ready else None

    def clear(self) -> None:
        self.ready.clear()
        self.returned.clear()


class PriorityBuffer:
    __slots__ = ("heap", "max_priority")

    def __init__(self, max_priority: int) -> None:
        self.max_priority = max_priority
        self.heap: list[tuple[int, int, Entry]] = []

    def __len__(self) -> int:
        return len(self.heap)

    def __iter__(self) -> Iterator[Entry]:
        return (item[2] for item in sorted(self.heap))

    def _key(self, entry: Entry) -> tuple[int, int, Entry]:
        priority = min(max(entry.message.priority, 0), self.max_priority)
        return (-priority, entry.seq, entry)

    def push(self, entry: Entry) -> None:
        heapq.heappush(self.heap, self._key(entry))

    requeue = push

    def pop(self) -> Entry | None:
        return heapq.heappop(self.heap)[2] if self.heap else None

    def peek(self) -> Entry | None:
        return self.heap[0][2] if self.heap else None

    def clear(self) -> None:
        self.heap.clear()
