"""The ready messages of a queue, in delivery order.

`FifoBuffer` is publish order. Requeued messages go back to their original position
(RabbitMQ's behaviour): they wait in `returned`, sorted by sequence number, and always
precede `ready`, because every message handed out was older than every one still waiting.
`PriorityBuffer` (x-max-priority) is highest priority first, publish order within a level;
it is never paged.
"""

from __future__ import annotations

import bisect
import heapq
import pickle
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from amqpbroker.broker.message import Entry
from amqpbroker.store.pages import PageFile, Pages

PAGE_IN_BATCH = 4096


@dataclass
class Paging:
    """How a broker's queues page: the page directory, and how many ready messages a
    queue keeps in memory before its tail goes to page files."""

    pages: Pages
    memory_limit: int


class FifoBuffer:
    """Publish order. Past `memory_limit` ready messages, the tail is paged out to a
    `PageFile` (opened on first need) and paged back in batches as the head drains."""

    __slots__ = ("memory_limit", "open_pages", "paged", "pages", "ready", "returned")

    def __init__(self, open_pages: Callable[[], PageFile] | None = None,
                 memory_limit: int = 0) -> None:
        self.ready: deque[Entry] = deque()
        self.returned: list[Entry] = []
        self.open_pages = open_pages
        self.memory_limit = memory_limit
        self.pages: PageFile | None = None
        self.paged = 0

    def __len__(self) -> int:
        return len(self.ready) + len(self.returned) + self.paged

    def __bool__(self) -> bool:
        return bool(self.ready or self.returned or self.paged)

    def __iter__(self) -> Iterator[Entry]:
        yield from self.returned
        yield from self.ready
        if self.paged and self.pages is not None:
            yield from (pickle.loads(record) for record in self.pages)

    def push(self, entry: Entry) -> None:
        if self.paged or (self.open_pages is not None and len(self.ready) >= self.memory_limit):
            if self.pages is None:
                self.pages = self.open_pages()  # type: ignore[misc]
            self.pages.append(pickle.dumps(entry, pickle.HIGHEST_PROTOCOL))
            self.paged += 1
        else:
            self.ready.append(entry)

    def _page_in(self) -> None:
        assert self.pages is not None
        records = self.pages.read(PAGE_IN_BATCH)
        self.paged -= len(records)
        self.ready.extend(pickle.loads(record) for record in records)

    def requeue(self, entry: Entry) -> None:
        bisect.insort(self.returned, entry)

    def pop(self) -> Entry | None:
        if self.returned:
            return self.returned.pop(0)
        if not self.ready and self.paged:
            self._page_in()
        return self.ready.popleft() if self.ready else None

    def peek(self) -> Entry | None:
        if self.returned:
            return self.returned[0]
        if not self.ready and self.paged:
            self._page_in()
        return self.ready[0] if self.ready else None

    def clear(self) -> None:
        self.ready.clear()
        self.returned.clear()
        if self.pages is not None:
            self.pages.reset()
        self.paged = 0

    def close(self) -> None:
        """The queue is gone: drop its page file."""
        self.clear()
        if self.pages is not None:
            self.pages.close()
            self.pages = None


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

    close = clear
