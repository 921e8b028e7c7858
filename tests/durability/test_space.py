"""What a backlog costs and what it leaves behind: disk per stored message, disk space given
back once messages are gone (while running and at start-up), memory after recovery from
kill -9, and a memory alarm that measures what the broker holds and clears after a drain.
Bounds have margins; nothing here measures speed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pika
import pytest
from durability_support import BrokerProcess, connect
from pamqp import commands, header
from pika.adapters.blocking_connection import BlockingChannel
from support.processes import wait_for

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.buffers import PageCodec, Paging
from amqpbroker.store.pages import Pages
from amqpbroker.store.sqlite import SqliteStore
from amqpbroker.transport.bridge import build_message
from amqpbroker.transport.committer import IDLE_WRITE_INTERVAL

pytestmark = pytest.mark.timeout(120)

PERSISTENT = pika.BasicProperties(delivery_mode=2)
PROPERTIES = 15  # content header payload of a message with only delivery_mode set


def apparent_size(path: Path) -> int:
    """Bytes in the files under `path`."""
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _dirs, files in os.walk(path) for name in files)


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _store_backlog(tmp_path: Path, body: bytes, count: int, memory_limit: int) -> int:
    """Bytes the data directory grew by while holding `count` persistent messages of
    `body` in a durable queue that pages past `memory_limit`."""
    data_dir = tmp_path / f"data-{len(body)}"
    store = SqliteStore(str(data_dir))
    pages = Pages(str(data_dir))
    paging = Paging(pages, memory_limit, PageCodec(build_message, store.read_message))
    broker = Broker(store=store, paging=paging)
    store.load()
    session = broker.open_session("/", "guest", _NullSink(), cancel_notify=False)
    assert session is not None
    vhost = session.vhost
    queue = vhost.declare_queue(None, "backlog", False, True, False, False, {})
    store.write_batch(store.take_batch())
    empty = apparent_size(data_dir)
    for _ in range(count):
        queue.enqueue(build_message("", "backlog", persistent_header(len(body)), body))
    store.write_batch(store.take_batch())
    for page_file in (q.buffer.pages for q in vhost.queues.values()):
        if page_file is not None:
            for chunk in page_file.chunks:
                chunk.file.flush()
    grown = apparent_size(data_dir) - empty
    store.close()
    return grown


def persistent_header(size: int) -> bytes:
    return header.ContentHeader(0, size, commands.Basic.Properties(delivery_mode=2)).marshal()


class _NullSink:
    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


@pytest.mark.parametrize(("size", "count"), [
    (0, 20_000), (100, 20_000), (1024, 10_000), (4096, 5_000), (65536, 400),
    (1024 * 1024, 24)])
def test_disk_per_stored_message(tmp_path: Path, size: int, count: int) -> None:
    """At most body + properties + 64 bytes per message, with most of the backlog paged."""
    grown = _store_backlog(tmp_path, b"x" * size, count, memory_limit=count // 4)
    assert grown / count <= size + PROPERTIES + 64, f"{grown / count:.1f} bytes per message"


def fill(channel: BlockingChannel, queue: str, count: int, body: bytes) -> None:
    """Publish `count` persistent, confirmed messages into a new durable queue."""
    channel.queue_declare(queue, durable=True)
    channel.confirm_delivery()
    for _ in range(count):
        channel.basic_publish("", queue, body, PERSISTENT)


def test_acked_messages_give_the_space_back(broker: BrokerProcess) -> None:
    broker.start()
    empty = apparent_size(broker.data_dir)
    connection = connect(broker)
    channel = connection.channel()
    fill(channel, "space", 10_000, b"x" * 4096)
    held = apparent_size(broker.data_dir)
    assert held - empty > 10_000 * 4096
    channel.basic_qos(prefetch_count=500)
    for taken, (method, _props, _body) in enumerate(
            channel.consume("space", inactivity_timeout=10), start=1):
        assert method is not None, f"the queue ran dry after {taken - 1} messages"
        if taken % 100 == 0:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if taken == 10_000:
            break
    channel.cancel()
    # Acks are written within IDLE_WRITE_INTERVAL; dead segments go right after.
    wait_for(lambda: apparent_size(broker.data_dir) < empty + 1024 * 1024,
               10 + 2 * IDLE_WRITE_INTERVAL, "the data directory to shrink back")
    connection.close()
    broker.restart("kill")
    assert apparent_size(broker.data_dir) < empty + 1024 * 1024
    assert broker.stop() == 0


def test_deleting_a_queue_gives_the_space_back(broker: BrokerProcess) -> None:
    broker.start()
    empty = apparent_size(broker.data_dir)
    connection = connect(broker)
    channel = connection.channel()
    fill(channel, "doomed", 5_000, b"y" * 4096)
    channel.queue_delete("doomed")
    wait_for(lambda: apparent_size(broker.data_dir) < empty + 1024 * 1024,
               10, "the data directory to shrink back")
    connection.close()
    assert broker.stop() == 0


def test_recovery_rss_stays_near_the_running_broker(tmp_path: Path) -> None:
    """A backlog far past the in-memory limit, kill -9, restart: the recovered broker
    pages as the running one did."""
    broker = BrokerProcess(tmp_path / "data", tmp_path / "broker.log",
                           "--queue-memory-limit", "2000")
    try:
        broker.start()
        connection = connect(broker)
        channel = connection.channel()
        channel.queue_declare("backlog", durable=True)
        for _ in range(40_000):
            channel.basic_publish("", "backlog", b"z" * 1024, PERSISTENT)
        channel.confirm_delivery()
        channel.basic_publish("", "backlog", b"z" * 1024, PERSISTENT)
        connection.close()
        assert broker.proc is not None
        running = rss(broker.proc.pid)
        broker.restart("kill")
        assert broker.proc is not None
        recovered = rss(broker.proc.pid)
        connection = connect(broker)
        depth = connection.channel().queue_declare("backlog", passive=True).method
        connection.close()
        assert depth.message_count == 40_001
        assert recovered <= running * 1.1 + 4 * 1024 * 1024, (running, recovered)
    finally:
        broker.cleanup()


def test_memory_alarm_blocks_then_clears_after_the_drain(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", tmp_path / "broker.log",
                           "--memory-high-watermark", "80MiB")
    try:
        broker.start()
        connection = connect(broker)
        blocked, unblocked = threading.Event(), threading.Event()
        connection.add_on_connection_blocked_callback(lambda *_: blocked.set())
        connection.add_on_connection_unblocked_callback(lambda *_: unblocked.set())
        channel = connection.channel()
        channel.queue_declare("big")
        body = b"m" * (1024 * 1024)
        for _ in range(60):  # 60 MiB queued, with the fixed overhead past 80 MiB
            channel.basic_publish("", "big", body)

        def raised() -> bool:
            connection.process_data_events(0.05)
            return blocked.is_set()
        wait_for(raised, 10, "connection.blocked")
        wait_for(lambda: "memory alarm raised" in broker.log(), 5, "the alarm in the log")
        consumer = connect(broker)  # not a publisher: the broker keeps reading it
        drain = consumer.channel()
        while drain.basic_get("big", auto_ack=True)[0] is not None:
            pass

        def cleared() -> bool:
            connection.process_data_events(0.05)
            return unblocked.is_set()
        wait_for(cleared, 10, "connection.unblocked after the drain")
        assert "memory alarm cleared" in broker.log()
        channel.basic_publish("", "big", b"after")  # publishing goes on
        wait_for(lambda: drain.basic_get("big", auto_ack=True)[0] is not None, 10,
                   "the publish after the alarm")
        consumer.close()
        connection.close()
    finally:
        broker.cleanup()
