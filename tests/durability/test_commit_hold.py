"""A publisher confirm leaves only after the write it confirms: with the disk held back by
a gate on the store's writes, a confirm waits for the gate, after a resource alarm too;
and a write that fails closes the connection without confirming anything."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
import pytest
from pika.exceptions import ConnectionClosedByBroker

from amqpbroker.store.base import Batch
from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for
from amqpbroker.transport.committer import Committer

pytestmark = pytest.mark.timeout(30)

PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture(params=["helper", "thread"])
def syncing(request: pytest.FixtureRequest) -> str:
    """Who makes the writes durable: the fsync helper process or the writer thread."""
    return str(request.param)


class Gate:
    """Holds back (or fails) the store's writes of batches that carry messages: the
    fsync helper's syncs or, with `syncing="thread"`, the writer thread's writes."""

    def __init__(self, broker: EmbeddedBroker, syncing: str, fail: bool = False) -> None:
        self.fail = fail
        self.entered = threading.Event()
        self.entries = 0
        self.opened = threading.Event()
        committer = broker.server.committer
        store = broker.server.broker.store
        self.write: Callable[[Batch], None] = store.write_batch
        if syncing == "thread":
            broker.call(use_writer_thread, committer)
            store.write_batch = self._write  # type: ignore[method-assign]
        else:
            syncer = committer.syncer
            assert syncer is not None, "the fsync helper did not start"
            self.broker = broker
            self.sync = syncer.sync
            syncer.sync = self._sync  # type: ignore[method-assign]

    def _write(self, batch: Batch) -> None:
        records = batch.messages[0] if batch.messages else None
        if records:
            self.entries += 1
            self.entered.set()
            if self.fail:
                raise OSError(28, "No space left on device")
            self.opened.wait(10)
        self.write(batch)

    def _sync(self, paths: list[str], done: Callable[[OSError | None], None]) -> None:
        self.entries += 1
        self.entered.set()
        if self.fail:
            done(OSError(28, "No space left on device"))
            return

        def later() -> None:
            self.opened.wait(10)
            self.broker.call(self.sync, paths, done)

        threading.Thread(target=later, daemon=True).start()


def use_writer_thread(committer: Committer) -> None:
    """Stop the fsync helper: the writer thread syncs from now on."""
    assert committer.syncer is not None
    committer.syncer.close()
    committer.syncer = None


@contextmanager
def publisher(broker: EmbeddedBroker) -> Iterator[Callable[[bytes], Future[Any]]]:
    """A pika publisher with confirms on its own thread; each call publishes one
    persistent message to the durable queue `jobs` and returns the confirm's future."""
    with ThreadPoolExecutor(1) as thread:
        connection = thread.submit(pika.BlockingConnection,
                                   pika.URLParameters(broker.url)).result(10)
        channel = thread.submit(connection.channel).result(10)
        thread.submit(channel.queue_declare, "jobs", durable=True).result(10)
        thread.submit(channel.confirm_delivery).result(10)
        try:
            yield lambda body: thread.submit(channel.basic_publish, "", "jobs", body,
                                             PERSISTENT)
        finally:
            if connection.is_open:
                thread.submit(connection.close).result(10)


def test_a_confirm_waits_for_its_write(tmp_path: Path, syncing: str) -> None:
    with broker_in_thread(data_dir=str(tmp_path / "data")) as broker, \
            publisher(broker) as publish:
        gate = Gate(broker, syncing)
        confirmed = publish(b"kept")
        assert gate.entered.wait(10), "the message was never written"
        assert broker.call(lambda: [c.has_output for c in broker.server.clients]) == [True]
        assert not confirmed.done(), "confirmed before its write was done"
        gate.opened.set()
        confirmed.result(10)
        assert [m.body for m in broker.messages("jobs")] == [b"kept"]


def test_a_confirm_after_an_alarm_waits_for_its_write(tmp_path: Path, syncing: str) -> None:
    with broker_in_thread(data_dir=str(tmp_path / "data")) as broker, \
            publisher(broker) as publish:
        gate = Gate(broker, syncing)
        broker.block_publishers()
        confirmed = publish(b"held")
        wait_for(lambda: broker.call(lambda: any(c.paused for c in broker.server.clients)),
                 what="the publish held back by the alarm")
        broker.unblock_publishers()
        assert gate.entered.wait(10), "the message was never written"
        assert broker.call(lambda: [c.has_output for c in broker.server.clients]) == [True]
        assert not confirmed.done(), "confirmed before its write was done"
        gate.opened.set()
        confirmed.result(10)


def test_a_failed_write_confirms_nothing(tmp_path: Path, syncing: str) -> None:
    with broker_in_thread(data_dir=str(tmp_path / "data")) as broker, \
            publisher(broker) as publish:
        Gate(broker, syncing, fail=True)
        with pytest.raises(ConnectionClosedByBroker) as closed:
            publish(b"lost").result(10)
        assert (closed.value.reply_code, closed.value.reply_text) == (
            541, "INTERNAL_ERROR - the store cannot be written")


def test_after_a_failed_write_nothing_more_is_written(tmp_path: Path, syncing: str) -> None:
    """A later publish is refused the same way, without a write: nothing may land behind
    a batch the disk took only part of."""
    with broker_in_thread(data_dir=str(tmp_path / "data")) as broker:
        gate = Gate(broker, syncing, fail=True)
        for body in (b"lost", b"refused"):
            with publisher(broker) as publish, \
                    pytest.raises(ConnectionClosedByBroker) as closed:
                publish(body).result(10)
            assert closed.value.reply_code == 541
        assert gate.entries == 1
