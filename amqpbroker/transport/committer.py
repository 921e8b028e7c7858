"""Group commit: write the store's batches one at a time, without the event loop waiting
for the disk, and let connections wait until what they recorded is on disk.

A batch of messages (the common case) is appended to the page cache by the event loop
and fsync'd by the helper process (`syncer.py`); a batch that changes definitions, or
holds large records, is written on a writer thread of its own.

A connection notes `store.recorded` after a read pass and waits for `committed` to reach
it; every change recorded while a batch is being written goes into the next one, so one
fsync covers everything that arrived meanwhile, from every connection. `start` starts a
batch at once, without a turn of the event loop: a read pass starts the write of its
messages before it delivers them, and the fsync runs while it does. Should the helper
exit, the writer thread syncs from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio

from amqpbroker.store import fsync_helper
from amqpbroker.store.base import Batch, Store
from amqpbroker.transport.syncer import HelperGone, Syncer

log = logging.getLogger("amqpbroker.store")

IDLE_WRITE_INTERVAL = 1.0


class StoreFailed(Exception):
    """A batch could not be written; what was waiting for it is not durable."""


class Committer:
    def __init__(self, store: Store) -> None:
        self.store = store
        # What was recorded before serving (definitions applied at start) was written then.
        self.committed = self._taken = store.recorded  # `_taken`: put in a batch
        self.failed: BaseException | None = None
        self._writing = False
        self._done = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="amqpbroker-store")
        self.syncer: Syncer | None = None  # the fsync helper; None: the thread syncs

    async def run(self) -> None:
        """Start the fsync helper for a store on disk; write pending acks (which nobody
        waits for) within a second when nothing else makes a batch; at the end, stop the
        helper and let the writer thread go once it is done."""
        if self.store.durable:
            self._loop = asyncio.get_running_loop()
            self.syncer = Syncer.start(self._loop)
        try:
            while True:
                await anyio.sleep(IDLE_WRITE_INTERVAL)
                self.start(acks_too=True)
        finally:
            if self.syncer is not None:
                self.syncer.close()
                self.syncer = None
            self._thread.shutdown(wait=False)

    def start(self, acks_too: bool = False) -> None:
        """Start writing what was recorded now (appended here and synced by the helper,
        or on the writer thread), unless a batch is being written (what was recorded then
        goes with the next one). Acks alone wait for the idle write unless `acks_too`.
        After a failed write nothing more is written: what is recorded stays readable from
        memory, and no later batch lands behind a torn one."""
        store = self.store
        if self._writing or self.failed is not None or not (
                store.recorded > self._taken or (acks_too and store.pending)):
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._writing = True
        batch, upto = store.take_batch(), store.recorded
        self._taken = upto
        if self.syncer is not None:
            try:
                to_sync = store.append_batch(batch)
            except OSError as exc:
                self._written(upto, exc)
                return
            if to_sync is not None:
                if to_sync:
                    self.syncer.sync(to_sync, functools.partial(self._synced, upto, to_sync))
                else:
                    self._written(upto, None)
                return
        self._thread.submit(self._write, batch, upto)

    def _synced(self, upto: int, paths: list[str], error: OSError | None) -> None:
        if isinstance(error, HelperGone):  # sync again on the thread, and from now on
            self.syncer = None
            self._thread.submit(self._sync, paths, upto)
            return
        self._written(upto, error)

    def _sync(self, paths: list[str], upto: int) -> None:
        """On the writer thread: fsync what the event loop appended."""
        error: OSError | None = None
        try:
            fsync_helper.sync_all(paths)
        except OSError as exc:
            error = exc
        self._tell(self._written, upto, error)

    def _write(self, batch: Batch, upto: int) -> None:
        """On the writer thread: write, then tell the event loop."""
        error: BaseException | None = None
        try:
            self.store.write_batch(batch)
        except Exception as exc:
            error = exc
        self._tell(self._written, upto, error)

    def _tell(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
            self._loop.call_soon_threadsafe(callback, *args)

    def _written(self, upto: int, error: BaseException | None) -> None:
        """A batch is durable up to `upto`, or failed (what waits for it then fails)."""
        if error is not None:
            log.error("writing to the store failed; nothing more is written until a "
                      "restart", exc_info=error)
            self.failed = error
        else:
            self.committed = upto
        self._writing = False
        done, self._done = self._done, anyio.Event()
        done.set()
        self.start()

    def kick(self) -> None:
        """Write what is pending without anyone waiting (e.g. changes made by timers)."""
        self.start(acks_too=True)

    async def wait(self, recorded: int) -> None:
        """Return once every change up to `recorded` is on disk; StoreFailed once a
        write failed."""
        while self.committed < recorded and self.failed is None:
            self.start()
            await self._done.wait()
        if self.failed is not None:
            raise StoreFailed(str(self.failed))

    async def flush(self) -> None:
        """Write everything recorded so far, acks included (at shutdown)."""
        while self.failed is None and (self._writing or self.store.pending):
            self.start(acks_too=True)
            await self._done.wait()
        if self.failed is not None:
            raise StoreFailed(str(self.failed))
