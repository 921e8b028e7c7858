"""Append-only segment files: the on-disk log under the message store and the page files.

A `SegmentLog` is a directory of numbered files (`00000001.seg`, ...). Records are
length-prefixed byte strings appended to the newest segment; a new segment starts once
the newest one reaches `max_size`. A record is addressed by its location, `segment << 32
| offset`, one int. The owner decides when a whole segment is no longer needed and
removes it, which gives its space back to the file system at once: no compaction, no
vacuum.

Locations are handed out when a record is `reserve`d (on the event loop), so callers can
refer to a record before it reaches the disk; `write` (in a worker thread, one at a time)
appends the reserved records in order and, when asked, fdatasyncs the files it wrote.
Until then `read` serves a record from memory.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator

LENGTH = struct.Struct(">I")
SUFFIX = ".seg"
SEGMENT_BITS = 32


def location(segment: int, offset: int) -> int:
    return segment << SEGMENT_BITS | offset


def split(where: int) -> tuple[int, int]:
    return where >> SEGMENT_BITS, where & 0xFFFFFFFF


class SegmentLog:
    """Numbered append-only files of length-prefixed records in one directory."""

    def __init__(self, directory: str, max_size: int) -> None:
        self.directory = directory
        self.max_size = max_size
        os.makedirs(directory, exist_ok=True)
        self.segments: list[int] = sorted(
            int(name[:-len(SUFFIX)]) for name in os.listdir(directory)
            if name.endswith(SUFFIX) and name[:-len(SUFFIX)].isdigit())
        self.tail = (self.segments[-1] if self.segments else 0) + 1
        self.tail_size = 0
        # Reserved, not yet written: (segment, offset, framed record), in order.
        self.reserved: list[tuple[int, int, bytes]] = []
        self.unwritten: dict[int, bytes] = {}
        self._readers: dict[int, int] = {}
        self._writer: tuple[int, int] | None = None  # (segment, fd)

    def path(self, segment: int) -> str:
        return os.path.join(self.directory, f"{segment:08d}{SUFFIX}")

    # --- the event loop's side ------------------------------------------------------

    def reserve(self, record: bytes, roll: bool = True) -> int:
        """The location `record` will have; it is written by the next `write`. With
        `roll` false the record stays in the current segment (keeps related records
        together)."""
        framed = LENGTH.pack(len(record)) + record
        if roll and self.tail_size and self.tail_size + len(framed) > self.max_size:
            self.tail += 1
            self.tail_size = 0
        where = location(self.tail, self.tail_size)
        self.reserved.append((self.tail, self.tail_size, framed))
        self.unwritten[where] = record
        self.tail_size += len(framed)
        return where

    def take_reserved(self) -> list[tuple[int, int, bytes]]:
        reserved, self.reserved = self.reserved, []
        return reserved

    # --- the writer's side (one thread at a time) ---------------------------------------

    def write(self, records: list[tuple[int, int, bytes]], sync: bool) -> None:
        """Append reserved records (in reservation order); fdatasync them if `sync`."""
        touched: list[int] = []
        index = 0
        while index < len(records):
            segment = records[index][0]
            end = index
            while end < len(records) and records[end][0] == segment:
                end += 1
            fd = self._open_for_append(segment)
            os.write(fd, b"".join(r[2] for r in records[index:end]))
            touched.append(fd)
            index = end
        if sync:
            for fd in touched:
                os.fdatasync(fd)
        unwritten = self.unwritten
        for segment, offset, _framed in records:
            unwritten.pop(location(segment, offset), None)

    def _open_for_append(self, segment: int) -> int:
        if self._writer is not None and self._writer[0] == segment:
            return self._writer[1]
        if self._writer is not None:
            os.close(self._writer[1])
        fd = os.open(self.path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if segment not in self.segments:
            self.segments.append(segment)
            self._sync_directory()
        self._writer = (segment, fd)
        return fd

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, segment: int) -> None:
        """Delete a whole segment (its records are no longer needed)."""
        if self._writer is not None and self._writer[0] == segment:
            os.close(self._writer[1])
            self._writer = None
        reader = self._readers.pop(segment, None)
        if reader is not None:
            os.close(reader)
        with contextlib.suppress(ValueError):
            self.segments.remove(segment)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(segment))

    # --- reading --------------------------------------------------------------------------

    def read(self, where: int) -> bytes:
        """One record by location (from memory while it is not yet written)."""
        record = self.unwritten.get(where)
        if record is not None:
            return record
        segment, offset = split(where)
        fd = self._readers.get(segment)
        if fd is None:
            fd = self._readers[segment] = os.open(self.path(segment), os.O_RDONLY)
        (length,) = LENGTH.unpack(os.pread(fd, 4, offset))
        return os.pread(fd, length, offset + 4)

    def scan(self, segment: int) -> Iterator[tuple[int, memoryview]]:
        """Every complete record of a segment, with its offset; a torn record at the end
        (a crash during a write) ends the scan. New records never go into a segment
        that existed when the log was opened, so a torn end is never appended to."""
        with open(self.path(segment), "rb") as file:
            data = memoryview(file.read())
        offset, size = 0, len(data)
        while offset + 4 <= size:
            (length,) = LENGTH.unpack_from(data, offset)
            if offset + 4 + length > size:
                break
            yield offset, data[offset + 4:offset + 4 + length]
            offset += 4 + length

    def close(self) -> None:
        if self._writer is not None:
            os.close(self._writer[1])
            self._writer = None
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
