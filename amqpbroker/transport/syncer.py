"""The event loop's side of the fsync helper process (`store/fsync_helper.py`).

The loop appends a batch to the page cache itself and hands the paths to fsync to the
helper; its answer comes back as a reader callback of the loop. The loop never waits for
the disk, and no thread has to take the GIL back from a busy loop between the fsync and
the confirms (a writer thread did, and each time it waited for the loop's pass to end).
One request at a time.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
import sys
from collections.abc import Callable

from amqpbroker.store import fsync_helper

log = logging.getLogger("amqpbroker.store")

Done = Callable[[OSError | None], None]


class HelperGone(OSError):
    """The helper exited: whether the last request was synced is unknown."""


class Syncer:
    """The helper process, and the one request it is working on."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._loop = loop
        self._process = process
        self._requests = process.stdin.fileno()
        self._replies = process.stdout.fileno()
        self._done: Done | None = None
        self._answer = b""
        self._closed = False
        loop.add_reader(self._replies, self._answered)

    @classmethod
    def start(cls, loop: asyncio.AbstractEventLoop) -> Syncer | None:
        """The helper, started; None (logged) when it cannot be."""
        try:
            process = subprocess.Popen([sys.executable, "-I", fsync_helper.__file__],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       bufsize=0)
        except OSError as exc:
            log.warning("cannot start the fsync helper (%s): the writer thread syncs", exc)
            return None
        return cls(loop, process)

    def sync(self, paths: list[str], done: Done) -> None:
        """fsync `paths`, then call `done` with None or the error (`HelperGone` when the
        helper is gone)."""
        assert self._done is None, "one request at a time"
        self._done = done
        if self._closed:
            self._fail_request()
            return
        try:
            os.write(self._requests, "\0".join(paths).encode() + b"\n")
        except OSError:
            self._gone()

    def _answered(self) -> None:
        try:
            chunk = os.read(self._replies, 64)
        except OSError:
            chunk = b""
        if not chunk:
            self._gone()
            return
        self._answer += chunk
        if not self._answer.endswith(b"\n"):
            return
        code, self._answer = int(self._answer), b""
        done, self._done = self._done, None
        if done is not None:
            done(OSError(code, os.strerror(code)) if code else None)

    def _gone(self) -> None:
        if not self._closed:
            log.warning("the fsync helper exited (status %s): the writer thread syncs",
                        self._process.poll())
            self.close()
        self._fail_request()

    def _fail_request(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(HelperGone(errno.EPIPE, "the fsync helper exited"))

    def close(self) -> None:
        """Stop the helper (it exits when its input closes)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._replies)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        self._process.stdout.close()
        try:
            self._process.wait(1)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
