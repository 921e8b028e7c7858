"""Paging: where a queue's tail goes when the queue holds more than its in-memory limit.

Each paged queue gets one append-only file of length-prefixed records, read back in
order; once every record has been read the file is truncated. Pages hold transient
messages too (persistent ones are also in the durable store), so the page directory is
emptied at start. Writes go through the file's buffer; reads come in batches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
import uuid
from collections.abc import Iterator

_LENGTH = struct.Struct(">I")


class PageFile:
    """One queue's paged-out records, first in, first out."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = open(path, "w+b")  # noqa: SIM115 - lives as long as the queue's tail
        self.read_pos = 0
        self.write_pos = 0

    def append(self, record: bytes) -> None:
        file = self.file
        if file.tell() != self.write_pos:
            file.seek(self.write_pos)
        file.write(_LENGTH.pack(len(record)))
        file.write(record)
        self.write_pos += 4 + len(record)

    def read(self, count: int) -> list[bytes]:
        """Up to `count` records, oldest first."""
        file = self.file
        file.seek(self.read_pos)
        records = []
        while len(records) < count and self.read_pos < self.write_pos:
            (length,) = _LENGTH.unpack(file.read(4))
            records.append(file.read(length))
            self.read_pos += 4 + length
        if self.read_pos >= self.write_pos:
            self.reset()
        return records

    def __iter__(self) -> Iterator[bytes]:
        """Every unread record, without consuming it."""
        file = self.file
        position = self.read_pos
        while position < self.write_pos:
            file.seek(position)
            (length,) = _LENGTH.unpack(file.read(4))
            yield file.read(length)
            position += 4 + length

    def reset(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.read_pos = self.write_pos = 0

    def close(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class Pages:
    """The page directory of a broker: `DATA_DIR/pages`, or a temporary directory."""

    def __init__(self, data_dir: str | None) -> None:
        if data_dir is None:
            self.directory = tempfile.mkdtemp(prefix="amqpbroker-pages-")
            self.temporary = True
        else:
            self.directory = os.path.join(data_dir, "pages")
            shutil.rmtree(self.directory, ignore_errors=True)
            os.makedirs(self.directory, exist_ok=True)
            self.temporary = False

    def open(self) -> PageFile:
        return PageFile(os.path.join(self.directory, uuid.uuid4().hex + ".pages"))

    def close(self) -> None:
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)
