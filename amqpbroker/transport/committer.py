"""Group commit: write the store's batches on a writer thread of their own, one at a time,
and let connections wait until what they recorded is on disk.

A connection notes `store.recorded` after a read pass and waits for `committed` to reach
it; every change recorded while a batch is being written goes into the next one, so one
fsync covers everything that arrived meanwhile, from every connection. `start` hands a
batch to the thread at once, without a turn of the event loop: a read pass starts the
write of its messages before it delivers them, and the fsync runs while it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

import anyio

from amqpbroker.store.base import Batch, Store

log = logging.getLogger("amqpbroker.store")

IDLE_WRITE_INTERVAL = 1.0


class StoreFailed(Exception):
    """A batch could not be written; what was waiting for it is not durable."""


class Committer:
    def __init__(self, store: Store) -> None:
        self.store = store
        # What was recorded before serving (definitions applied at start) was written then.
        self.committed = store.recorded
        self.failed: BaseException | None = None
        self._writing = False
        self._done = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="amqpbroker-store")

    async def run(self) -> None:
        """Write pending acks (which nobody waits for) within a second when nothing else
        makes a batch; at the end, let the writer thread go once it is done."""
        try:
            while True:
                await anyio.sleep(IDLE_WRITE_INTERVAL)
                self.start(acks_too=True)
        finally:
            self._thread.shutdown(wait=False)

    def start(self, acks_too: bool = False) -> None:
        """Hand what was recorded to the writer thread now, unless a batch is being
        written (what was recorded then goes with the next one). Acks alone wait for the
        idle write unless `acks_too`."""
        store = self.store
        if self._writing or not (store.recorded > self.committed
                                 or (acks_too and store.pending)):
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._writing = True
        self._thread.submit(self._write, store.take_batch(), store.recorded)

    def _write(self, batch: Batch, upto: int) -> None:
        """On the writer thread: write, then tell the event loop."""
        error: BaseException | None = None
        try:
            self.store.write_batch(batch)
        except Exception as exc:
            error = exc
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
            self._loop.call_soon_threadsafe(self._written, upto, error)

    def _written(self, upto: int, error: BaseException | None) -> None:
        if error is not None:
            log.error("writing to the store failed", exc_info=error)
            self.failed = error
        self.committed = upto
        self._writing = False
        done, self._done = self._done, anyio.Event()
        done.set()
        self.start()

    def kick(self) -> None:
        """Write what is pending without anyone waiting (e.g. changes made by timers)."""
        self.start(acks_too=True)

    async def wait(self, recorded: int) -> None:
        """Return once every change up to `recorded` is on disk."""
        while self.committed < recorded:
            self.start()
            await self._done.wait()
        if self.failed is not None:
            raise StoreFailed(str(self.failed))

    async def flush(self) -> None:
        """Write everything recorded so far, acks included (at shutdown)."""
        while self._writing or self.store.pending:
            self.start(acks_too=True)
            await self._done.wait()
        if self.failed is not None:
            raise StoreFailed(str(self.failed))
