"""Append-only segment files: the on-disk log under the message store and the page files.

A `SegmentLog` is a directory of numbered files (`00000001.seg`, ...). Records are
length-prefixed byte strings appended to the newest segment; a new segment starts once
the newest one reaches `max_size`. A record is addressed by its location, `segment << 32
| offset`, one int. The owner decides when a whole segment is no longer needed and
removes it, which gives its space back to the file system at once: no compaction, no
vacuum.

Locations are handed out when a record is `reserve`d (on the event loop), so callers can
refer to a record before it reaches the disk; `append` (one caller at a time) appends the
reserved records in order and says which files to fsync for them to be durable, and
`write` does both (in a worker thread). Until the append `read` serves a record from
memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from collections.abc import Iterator

from amqpbroker.store import fsync_helper

LENGTH = struct.Struct(">I")
SUFFIX = ".seg"
SEGMENT_BITS = 32

def location(segment: int, offset: int) -> int:
    return segment << SEGMENT_BITS | offset


def split(where: int) -> tuple[int, int]:
    return where >> SEGMENT_BITS, where & 0xFFFFFFFF


class LastAppended:
    """One file of a numbered set kept open for appending: the one appended to last
    (appends mostly go to the same file as the one before)."""

    def __init__(self) -> None:
        self.number: int | None = None
        self.fd = -1

    def open(self, number: int, path: str) -> tuple[int, bool]:
        """The descriptor of file `number` at `path`, and whether it was opened now."""
        if self.number == number:
            return self.fd, False
        self.close()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.number = number
        return self.fd, True

    def close(self, number: int | None = None) -> None:
        """Close the open file (only if it is file `number`, when given)."""
        if self.number is not None and number in (None, self.number):
            os.close(self.fd)
            self.number, self.fd = None, -1


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
        # Framed records by location, in order: reserved, and being written.
        self.reserved: dict[int, bytes] = {}
        self.writing: dict[int, bytes] = {}
        self._readers: dict[int, int] = {}
        self._writer = LastAppended()

    def path(self, segment: int) -> str:
        return os.path.join(self.directory, f"{segment:08d}{SUFFIX}")

    # --- the event loop's side ------------------------------------------------------

    def reserve(self, framed: bytes, roll: bool = True) -> int:
        """The location the record `framed` (length-prefixed: `LENGTH`, then the record)
        will have; it is written by the next `write`. With `roll` false the record stays
        in the current segment (keeps related records together)."""
        if roll and self.tail_size and self.tail_size + len(framed) > self.max_size:
            self.tail += 1
            self.tail_size = 0
        where = self.tail << SEGMENT_BITS | self.tail_size
        self.reserved[where] = framed
        self.tail_size += len(framed)
        return where

    def take_reserved(self) -> dict[int, bytes]:
        """The reserved records, for one `write`; `read` finds them until it is done."""
        self.writing, self.reserved = self.reserved, {}
        return self.writing

    # --- appending (one caller at a time: the event loop or the writer thread) -----------

    def append(self, records: dict[int, bytes]) -> list[str]:
        """Append records that `take_reserved` took (in reservation order), without
        waiting for the disk; returns what to fsync for them to be durable: the files
        written and, when a segment was created, the directory (with a trailing `/`)."""
        first = next(iter(records), None)
        if first is not None and first >> SEGMENT_BITS == next(reversed(records)) >> SEGMENT_BITS:
            runs = [(first >> SEGMENT_BITS, list(records.values()))]
        else:
            runs = []
            for where, framed in records.items():
                segment = where >> SEGMENT_BITS
                if not runs or runs[-1][0] != segment:
                    runs.append((segment, []))
                runs[-1][1].append(framed)
        to_sync: list[str] = []
        for segment, framed_records in runs:
            path = self.path(segment)
            fd, opened = self._writer.open(segment, path)
            if opened and segment not in self.segments:
                self.segments.append(segment)
                to_sync.append(self.directory + os.sep)
            data = b"".join(framed_records)
            written = os.write(fd, data)
            if written != len(data):  # the disk filled up mid-write: nothing is confirmed
                raise OSError(errno.ENOSPC, f"{path}: wrote {written} of {len(data)} bytes")
            to_sync.append(path)
        self.writing = {}
        return to_sync

    def write(self, records: dict[int, bytes], sync: bool) -> None:
        """`append`, then fdatasync what it wrote if `sync`."""
        to_sync = self.append(records)
        if sync:
            fsync_helper.sync_all(to_sync)

    def remove(self, segment: int) -> None:
        """Delete a whole segment (its records are no longer needed)."""
        self._writer.close(segment)
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
        framed = self.reserved.get(where) or self.writing.get(where)
        if framed is not None:
            return framed[4:]
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
        self._writer.close()
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
