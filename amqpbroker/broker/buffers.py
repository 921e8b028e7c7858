"""The ready messages of a queue, in delivery order.

`FifoBuffer` is publish order. Requeued messages go back to their original position
(RabbitMQ's behaviour): they wait in `returned`, sorted by sequence number, and always
precede `ready`, because every message handed out was older than every one still waiting.
`PriorityBuffer` (x-max-priority) is highest priority first, publish order within a level;
it is never paged.

Paged entries are written in wire form (`PageCodec`): the entry's state, then either the
message itself (exchange, routing key, content header, body) or, for a message the
durable store already holds, only its location there (13 bytes on disk for an entry
that was never delivered and has no expiry).
"""

from __future__ import annotations

import bisect
import heapq
import math
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from amqpbroker.broker.message import Entry, Message
from amqpbroker.store.messages import decode_message
from amqpbroker.store.pages import PageFile, Pages

PAGE_IN_BATCH = 4096
MessageFactory = Callable[[str, str, bytes, bytes], Message]
StoredReader = Callable[[int], tuple[int, str, str, bytes, bytes]]
_ENTRY = struct.Struct(">QBId")  # seq, redelivered, delivery count, expires at (NaN: never)
_LOCATION = struct.Struct(">Q")
# Record kinds: the whole entry; a stored message with the entry's state; a stored
# message never delivered (or redelivered) with no expiry, by location alone.
_FULL, _STORED, _PLAIN, _REDELIVERED = b"F", b"S", b"p", b"r"


@dataclass
class PageCodec:
    """Entries to page records and back."""

    make_message: MessageFactory
    read_stored: StoredReader | None = None

    def encode(self, entry: Entry) -> bytes:
        if entry.stored and self.read_stored is not None:
            if entry.expires_at is None and not entry.delivery_count:
                return self.stored(entry.stored, entry.redelivered)
            return _STORED + self._state(entry) + _LOCATION.pack(entry.stored)
        message = entry.message
        expires = math.nan if entry.expires_at is None else entry.expires_at
        exchange, routing_key, header = (message.exchange.encode(),
                                         message.routing_key.encode(), message.header)
        return b"".join((struct.pack(
            f">cQBIdB{len(exchange)}sB{len(routing_key)}sI", _FULL, entry.seq,
            entry.redelivered, entry.delivery_count, expires, len(exchange), exchange,
            len(routing_key), routing_key, len(header)), header, message.body))

    @staticmethod
    def stored(location: int, redelivered: bool) -> bytes:
        """The record of a stored message with no expiry and no delivery count."""
        return (_REDELIVERED if redelivered else _PLAIN) + _LOCATION.pack(location)

    @staticmethod
    def _state(entry: Entry) -> bytes:
        expires = math.nan if entry.expires_at is None else entry.expires_at
        return _ENTRY.pack(entry.seq, entry.redelivered, entry.delivery_count, expires)

    def decode(self, record: bytes) -> Entry:
        kind = record[:1]
        if kind in (_PLAIN, _REDELIVERED):
            (stored,) = _LOCATION.unpack_from(record, 1)
            seq, *fields = self.read_stored(stored)  # type: ignore[misc]
            entry = Entry(seq, self.make_message(*fields), None, stored=stored)
            entry.redelivered = kind == _REDELIVERED
            return entry
        seq, redelivered, delivery_count, expires = _ENTRY.unpack_from(record, 1)
        rest = 1 + _ENTRY.size
        stored = 0
        if kind == _STORED:
            (stored,) = _LOCATION.unpack_from(record, rest)
            _, *fields = self.read_stored(stored)  # type: ignore[misc]
        else:
            fields = list(decode_message(memoryview(record)[rest:]))
        entry = Entry(seq, self.make_message(*fields),
                      None if math.isnan(expires) else expires, stored=stored)
        entry.redelivered = bool(redelivered)
        entry.delivery_count = delivery_count
        return entry


@dataclass
class Paging:
    """How a broker's queues page: the page directory, how many ready messages a queue
    keeps in memory before its tail goes to page files, and how entries are written."""

    pages: Pages
    memory_limit: int
    codec: PageCodec


class FifoBuffer:
    """Publish order. Past `memory_limit` ready messages, the tail is paged out to a
    `PageFile` (opened on first need) and paged back in batches as the head drains."""

    __slots__ = ("codec", "memory_limit", "open_pages", "paged", "paged_bytes", "pages", "ready",
                 "returned")

    def __init__(self, paging: Paging | None = None) -> None:
        self.ready: deque[Entry] = deque()
        self.returned: list[Entry] = []
        self.open_pages = paging.pages.open if paging is not None else None
        self.memory_limit = paging.memory_limit if paging is not None else 0
        self.codec = paging.codec if paging is not None else None
        self.pages: PageFile | None = None
        self.paged = 0
        self.paged_bytes = 0  # body bytes of the paged entries

    def __len__(self) -> int:
        return len(self.ready) + len(self.returned) + self.paged

    def __bool__(self) -> bool:
        return bool(self.ready or self.returned or self.paged)

    def __iter__(self) -> Iterator[Entry]:
        yield from self.returned
        yield from self.ready
        if self.paged and self.pages is not None and self.codec is not None:
            yield from map(self.codec.decode, self.pages)

    @property
    def paging(self) -> bool:
        """The next push goes to the page file."""
        return bool(self.paged) or (self.open_pages is not None
                                    and len(self.ready) >= self.memory_limit)

    def page_stored(self, location: int, redelivered: bool, size: int) -> None:
        """Push a stored message with no expiry straight to the page file (recovery)."""
        if self.pages is None:
            self.pages = self.open_pages()  # type: ignore[misc]
        self.pages.append(PageCodec.stored(location, redelivered))
        self.paged += 1
        self.paged_bytes += size

    def push(self, entry: Entry) -> None:
        if self.paged or (self.open_pages is not None and len(self.ready) >= self.memory_limit):
            if self.pages is None:
                self.pages = self.open_pages()  # type: ignore[misc]
            self.pages.append(self.codec.encode(entry))  # type: ignore[union-attr]
            self.paged += 1
            self.paged_bytes += len(entry.message.body)
        else:
            self.ready.append(entry)

    def _page_in(self) -> None:
        assert self.pages is not None
        records = self.pages.read(PAGE_IN_BATCH)
        self.paged -= len(records)
        entries = list(map(self.codec.decode, records))  # type: ignore[union-attr]
        self.paged_bytes -= sum(len(entry.message.body) for entry in entries)
        self.ready.extend(entries)

    @property
    def in_memory(self) -> int:
        """Entries held in memory (not paged)."""
        return len(self.ready) + len(self.returned)

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
        self.paged_bytes = 0

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

    paged_bytes = 0

    @property
    def in_memory(self) -> int:
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
