"""Group commit: write the store's batches off the event loop, one at a time, and let
connections wait until what they recorded is on disk.

A connection notes `store.recorded` after a read pass and waits for `committed` to reach
it; every change recorded while a batch is being written goes into the next one, so one
fsync covers everything that arrived meanwhile, from every connection.
"""

from __future__ import annotations

import logging

import anyio

from amqpbroker.store.base import Store

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
        self._kick = anyio.Event()
        self._done = anyio.Event()

    async def run(self) -> None:
        store = self.store
        while True:
            if not store.pending:
                # Acks promise nothing and kick nobody: they are written within a second.
                with anyio.move_on_after(IDLE_WRITE_INTERVAL):
                    await self._kick.wait()
                self._kick = anyio.Event()
                continue
            upto = store.recorded
            batch = store.take_batch()
            try:
                await anyio.to_thread.run_sync(store.write_batch, batch)
            except Exception as exc:
                log.exception("writing to the store failed")
                self.failed = exc
            self.committed = upto
            done, self._done = self._done, anyio.Event()
            done.set()

    def kick(self) -> None:
        """Write what is pending without anyone waiting (e.g. changes made by timers)."""
        if self.store.pending:
            self._kick.set()

    async def wait(self, recorded: int) -> None:
        """Return once every change up to `recorded` is on disk."""
        while self.committed < recorded:
            self._kick.set()
            await self._done.wait()
        if self.failed is not None:
            raise StoreFailed(str(self.failed))

    async def flush(self) -> None:
        """Write everything recorded so far (at shutdown)."""
        await self.wait(self.store.recorded)
