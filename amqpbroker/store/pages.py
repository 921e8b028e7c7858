"""Paging: where a queue's tail goes when the queue holds more than its in-memory limit.

Each paged queue gets a chain of append-only chunk files of length-prefixed records,
read back in order. A chunk is deleted as soon as every record in it has been read, and
the last one is truncated when the reader catches up, so a page file holds about what is
still paged out, never more than one chunk beyond it. Pages hold transient messages too
(persistent ones point into the message store instead of repeating it), so the page
directory is emptied at start. A broker without a data directory pages to unnamed
temporary files, which vanish with the process however it ends. Writes go in blocks;
reads come in batches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
import uuid
from collections import deque
from collections.abc import Iterator
from typing import BinaryIO

_LENGTH = struct.Struct(">I")
CHUNK_SIZE = 4 * 1024 * 1024
WRITE_SIZE = 64 * 1024  # appended records are written in blocks of about this size


class _Chunk:
    __slots__ = ("file", "path", "pending", "pending_size", "read_pos", "write_pos")

    def __init__(self, path: str | None) -> None:
        self.path = path
        # Closed by PageFile (`drop`): a chunk lives as long as its records.
        self.file: BinaryIO = (
            open(path, "w+b") if path is not None  # noqa: SIM115
            else tempfile.TemporaryFile())  # noqa: SIM115
        self.read_pos = 0
        self.write_pos = 0  # of what is in the file; `pending` follows it
        self.pending: list[bytes] = []
        self.pending_size = 0

    def flush(self) -> None:
        """Write the appended records still held in memory, in one write."""
        if self.pending:
            file = self.file
            file.seek(self.write_pos)
            file.write(b"".join(self.pending))
            self.write_pos += self.pending_size
            self.pending = []
            self.pending_size = 0

    def drop(self) -> None:
        self.file.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


class PageFile:
    """One queue's paged-out records, first in, first out."""

    def __init__(self, path: str | None, chunk_size: int = CHUNK_SIZE) -> None:
        self.path = path
        self.chunk_size = chunk_size
        self.chunks: deque[_Chunk] = deque()
        self.opened = 0

    def _new_chunk(self) -> _Chunk:
        self.opened += 1
        chunk = _Chunk(f"{self.path}.{self.opened}" if self.path is not None else None)
        self.chunks.append(chunk)
        return chunk

    def append(self, record: bytes) -> None:
        chunks = self.chunks
        chunk = chunks[-1] if chunks else self._new_chunk()
        if chunk.write_pos + chunk.pending_size >= self.chunk_size:
            chunk.flush()
            chunk = self._new_chunk()
        chunk.pending.append(_LENGTH.pack(len(record)))
        chunk.pending.append(record)
        chunk.pending_size += 4 + len(record)
        if chunk.pending_size >= WRITE_SIZE:
            chunk.flush()

    def read(self, count: int) -> list[bytes]:
        """Up to `count` records, oldest first; chunks read to the end are deleted."""
        records: list[bytes] = []
        chunks = self.chunks
        while chunks and len(records) < count:
            chunk = chunks[0]
            chunk.flush()
            file = chunk.file
            file.seek(chunk.read_pos)
            while len(records) < count and chunk.read_pos < chunk.write_pos:
                (length,) = _LENGTH.unpack(file.read(4))
                records.append(file.read(length))
                chunk.read_pos += 4 + length
            if chunk.read_pos < chunk.write_pos:
                break
            if len(chunks) == 1:
                self.reset()
                break
            chunks.popleft().drop()
        return records

    def __iter__(self) -> Iterator[bytes]:
        """Every unread record, without consuming it."""
        for chunk in list(self.chunks):
            chunk.flush()
            position = chunk.read_pos
            while position < chunk.write_pos:
                chunk.file.seek(position)
                (length,) = _LENGTH.unpack(chunk.file.read(4))
                yield chunk.file.read(length)
                position += 4 + length

    def reset(self) -> None:
        """Forget every record: keep one empty chunk."""
        while len(self.chunks) > 1:
            self.chunks.pop().drop()
        if self.chunks:
            chunk = self.chunks[0]
            chunk.file.seek(0)
            chunk.file.truncate()
            chunk.read_pos = chunk.write_pos = chunk.pending_size = 0
            chunk.pending = []

    def close(self) -> None:
        while self.chunks:
            self.chunks.pop().drop()


class Pages:
    """The page directory of a broker, `DATA_DIR/pages`; without a data directory, page
    files are unnamed temporary files."""

    def __init__(self, data_dir: str | None) -> None:
        self.directory: str | None = None
        if data_dir is not None:
            self.directory = os.path.join(data_dir, "pages")
            shutil.rmtree(self.directory, ignore_errors=True)
            os.makedirs(self.directory, exist_ok=True)

    def open(self) -> PageFile:
        if self.directory is None:
            return PageFile(None)
        return PageFile(os.path.join(self.directory, uuid.uuid4().hex + ".pages"))
