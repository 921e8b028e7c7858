"""Persistent messages on durable queues, in a segment log with an ack file per segment.

Layout, in `DATA_DIR/messages/`:

* `NNNNNNNN.seg`: records appended in publish order. A message record is the message
  (exchange, routing key, content header, body) for the first queue that holds it (queue
  id, sequence number); every further queue gets a small link record (queue id, sequence
  number, offset of the message record) right after it, in the same segment. A message
  routed to eight durable queues is written once.
* `NNNNNNNN.acks`: links of that segment whose message is gone (acked, purged, expired,
  dead-lettered), as (queue id, sequence number). Written with the next batch, not
  fsync'd: after a crash a lost ack means a redelivery, never a lost message.

Queues are named by a number (`queue id`) that the definitions store keeps beside each
durable queue and never reuses, so the links of a deleted queue are dead at once and a
successor of the same name starts clean.

In memory the store keeps only counts: live links per segment and queue, and for each
queue which segments its sequence numbers went to. A segment whose live count reaches
zero (and that is no longer being appended to) is deleted with its ack file: disk space
goes back to the file system as soon as the messages are gone, and at start-up dead
segments are removed before anything else.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from amqpbroker.store.segments import (
    SEGMENT_BITS,
    LastAppended,
    SegmentLog,
    location,
    split,
)

MESSAGE = 0x4D  # "M"
LINK = 0x4C  # "L"
SEGMENT_SIZE = 8 * 1024 * 1024
TAIL_ROLL = 512 * 1024  # an emptied newest segment at least this big is replaced
_MESSAGE = struct.Struct(">BIQ")  # type, queue id, sequence number; the message follows:
# exchange and routing key (each a length octet and UTF-8), header length, header, body
_LINK = struct.Struct(">BIQI")  # type, queue id, sequence number, message offset
_FRAMED_MESSAGE = struct.Struct(">IBIQB")  # record length, _MESSAGE, exchange length
_FRAMED_LINK = struct.Struct(">IBIQI")  # record length, _LINK
_ACK = struct.Struct(">IQ")  # queue id, sequence number
LINK_SIZE = 4 + _LINK.size
OFFSET_MASK = (1 << SEGMENT_BITS) - 1
_HEADER_LENGTH = struct.Struct(">I")


class LiveMessage(NamedTuple):
    """One live message of one queue, as read back at start."""

    queue_id: int
    seq: int
    location: int  # of this queue's record: `read` fetches the message again
    message: memoryview  # the message's fields: `decode_message` reads them


def body_size(fields: bytes | memoryview) -> int:
    """The body length of a message's fields (as `MessageStore.put` writes them), without
    copying it."""
    ex_end = 1 + fields[0]
    rk_end = ex_end + 1 + fields[ex_end]
    (header_length,) = _HEADER_LENGTH.unpack_from(fields, rk_end)
    return len(fields) - (rk_end + 4 + header_length)


def decode_message(fields: bytes | memoryview) -> tuple[str, str, bytes, bytes]:
    """(exchange, routing key, content header, body) from a message's fields."""
    ex_end = 1 + fields[0]
    exchange = bytes(fields[1:ex_end]).decode()
    rk_end = ex_end + 1 + fields[ex_end]
    routing_key = bytes(fields[ex_end + 1:rk_end]).decode()
    (header_length,) = _HEADER_LENGTH.unpack_from(fields, rk_end)
    header_end = rk_end + 4 + header_length
    return exchange, routing_key, bytes(fields[rk_end + 4:header_end]), bytes(
        fields[header_end:])


@dataclass
class _Runs:
    """Which segment each sequence number of one queue went to: runs of (first seq,
    segment), appended in order."""

    first: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    last: int = -1  # the segment of the newest run

    def add(self, seq: int, segment: int) -> None:
        if self.last != segment:
            self.first.append(seq)
            self.segments.append(segment)
            self.last = segment

    def find(self, seq: int) -> int | None:
        first = self.first
        if first and seq >= first[-1]:
            return self.last
        index = bisect.bisect_right(first, seq) - 1
        return self.segments[index] if index >= 0 else None


class MessageStore:
    """The segment log of persistent messages, with its live counts."""

    def __init__(self, directory: str, segment_size: int = SEGMENT_SIZE) -> None:
        self.log = SegmentLog(directory, segment_size)
        self.live: dict[int, dict[int, int]] = {}  # segment -> queue id -> live links
        self.runs: dict[int, _Runs] = {}
        self.acks: dict[int, list[bytes]] = {}  # segment -> ack records to append
        self.dead: list[int] = []  # segments to delete after the next write
        # The last message record: header, body, exchange, routing key, location.
        self._last: tuple[bytes, bytes, str, str, int] | None = None
        self._ack_file = LastAppended()

    @property
    def pending(self) -> bool:
        return bool(self.log.reserved or self.acks or self.dead)

    def ack_path(self, segment: int) -> str:
        return self.log.path(segment)[:-4] + ".acks"

    # --- recording (event loop) ------------------------------------------------------

    def put(self, queue_id: int, seq: int, exchange: str, routing_key: str, header: bytes,
            body: bytes) -> int:
        """Record a message for a queue; returns the location of the queue's record.
        Copies of one message for several queues in a row share one message record."""
        log = self.log
        last = self._last
        if (last is not None and last[0] is header and last[1] is body
                and last[2] == exchange and last[3] == routing_key
                and last[4] >> SEGMENT_BITS == log.tail
                and log.tail_size + LINK_SIZE <= log.max_size):
            where = log.reserve(_FRAMED_LINK.pack(_LINK.size, LINK, queue_id, seq,
                                                  last[4] & OFFSET_MASK), roll=False)
        else:
            ex, rk = exchange.encode(), routing_key.encode()
            where = log.reserve(b"".join((
                _FRAMED_MESSAGE.pack(_MESSAGE.size + 6 + len(ex) + len(rk) + len(header)
                                     + len(body), MESSAGE, queue_id, seq, len(ex)),
                ex, bytes((len(rk),)), rk, _HEADER_LENGTH.pack(len(header)), header, body)))
            self._last = (header, body, exchange, routing_key, where)
        segment = where >> SEGMENT_BITS
        counts = self.live.get(segment)
        if counts is None:
            counts = self.live[segment] = {}
        counts[queue_id] = counts.get(queue_id, 0) + 1
        runs = self.runs.get(queue_id)
        if runs is None:
            runs = self.runs[queue_id] = _Runs()
        if runs.last != segment:
            runs.add(seq, segment)
        return where

    def delete(self, queue_id: int, seq: int) -> None:
        """The queue is done with this message."""
        runs = self.runs.get(queue_id)
        segment = runs.find(seq) if runs is not None else None
        if segment is None:
            return
        counts = self.live.get(segment)
        if counts is None or not counts.get(queue_id):
            return
        counts[queue_id] -= 1
        acks = self.acks.get(segment)
        if acks is None:
            acks = self.acks[segment] = []
        acks.append(_ACK.pack(queue_id, seq))
        if not counts[queue_id]:
            del counts[queue_id]
            if not counts:
                self._segment_done(segment)

    def drop_queue(self, queue_id: int) -> None:
        """A queue was deleted: every link of it is dead."""
        self.runs.pop(queue_id, None)
        for segment in list(self.live):
            counts = self.live[segment]
            if counts.pop(queue_id, None) and not counts:
                self._segment_done(segment)

    def _segment_done(self, segment: int) -> None:
        log = self.log
        if segment == log.tail:
            if log.tail_size < TAIL_ROLL:
                return  # small: keep appending to it; dropped when it fills or empties later
            log.tail += 1  # nothing live in a large newest segment: start another, drop it
            log.tail_size = 0
        del self.live[segment]
        self.acks.pop(segment, None)
        self.dead.append(segment)

    def collect(self) -> None:
        """Segments behind the tail with nothing live left become dead (after a roll)."""
        for segment in [s for s, counts in self.live.items() if not counts]:
            self._segment_done(segment)

    def take(self) -> tuple[dict[int, bytes], dict[int, list[bytes]], list[int]]:
        """What the next write appends and removes."""
        self.collect()
        acks, self.acks = self.acks, {}
        dead, self.dead = self.dead, []
        return self.log.take_reserved(), acks, dead

    # --- writing (one caller at a time: the event loop or the writer thread) ---------------

    def append(self, records: dict[int, bytes], acks: dict[int, list[bytes]],
               dead: list[int]) -> list[str]:
        """`write` without waiting for the disk: returns what to fsync for the records
        to be durable (acks and removals need no fsync)."""
        to_sync = self.log.append(records) if records else []
        self._settle(acks, dead)
        return to_sync

    def write(self, records: dict[int, bytes], acks: dict[int, list[bytes]],
              dead: list[int]) -> None:
        """Append and fdatasync the records, append the acks, delete dead segments."""
        if records:
            self.log.write(records, sync=True)
        self._settle(acks, dead)

    def _settle(self, acks: dict[int, list[bytes]], dead: list[int]) -> None:
        for segment, entries in acks.items():
            os.write(self._ack_file.open(segment, self.ack_path(segment))[0],
                     b"".join(entries))
        for segment in dead:
            self.remove(segment)

    def remove(self, segment: int) -> None:
        self._ack_file.close(segment)
        self.log.remove(segment)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.ack_path(segment))

    # --- reading ---------------------------------------------------------------------------

    def read(self, where: int) -> tuple[int, str, str, bytes, bytes]:
        """A queue's message by the location of its record: (sequence number, exchange,
        routing key, header, body)."""
        record = self.log.read(where)
        if record[0] == LINK:
            _, _, seq, offset = _LINK.unpack(record)
            record = self.log.read(location(split(where)[0], offset))
        else:
            _, _, seq = _MESSAGE.unpack_from(record)
        return (seq, *decode_message(memoryview(record)[_MESSAGE.size:]))

    def load(self, queue_ids: set[int]) -> Iterator[LiveMessage]:
        """Every live message of the given queues, segment by segment in publish order;
        rebuilds the live counts. Segments with nothing live are deleted first."""
        for segment in list(self.log.segments):
            acked = self._acked(segment)
            live: list[LiveMessage] = []
            messages: dict[int, memoryview] = {}
            for offset, record in self.log.scan(segment):
                kind = record[0]
                if kind == MESSAGE:
                    _, queue_id, seq = _MESSAGE.unpack_from(record)
                    message = messages[offset] = record[_MESSAGE.size:]
                elif kind == LINK:
                    _, queue_id, seq, message_offset = _LINK.unpack(record)
                    message = messages[message_offset]
                else:
                    break  # not a record of ours: the rest of this segment is unusable
                if queue_id in queue_ids and (queue_id, seq) not in acked:
                    live.append(LiveMessage(queue_id, seq, location(segment, offset), message))
            if not live:
                self.remove(segment)
                continue
            counts = self.live[segment] = {}
            for found in live:
                queue_id = found.queue_id
                counts[queue_id] = counts.get(queue_id, 0) + 1
                runs = self.runs.get(queue_id)
                if runs is None:
                    runs = self.runs[queue_id] = _Runs()
                runs.add(found.seq, segment)
            yield from live

    def _acked(self, segment: int) -> set[tuple[int, int]]:
        try:
            with open(self.ack_path(segment), "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return set()
        whole = len(data) - len(data) % _ACK.size
        return {_ACK.unpack_from(data, i) for i in range(0, whole, _ACK.size)}

    def close(self) -> None:
        self._ack_file.close()
        self.log.close()
