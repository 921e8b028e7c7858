"""Paging: past its in-memory limit a queue's tail goes to a page file and comes back in
order; purge, requeue, TTL, deletion and the persistent store still behave."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pamqp import commands
from test_model import World

from amqpbroker.broker.broker import Broker
from amqpbroker.broker.buffers import FifoBuffer, PageCodec, Paging
from amqpbroker.store.pages import Pages
from amqpbroker.transport.bridge import build_message

LIMIT = 10


@pytest.fixture
def pages(tmp_path: Path) -> Pages:
    return Pages(str(tmp_path))


@pytest.fixture
def w(pages: Pages) -> World:
    return World(Broker(paging=Paging(pages, LIMIT, PageCodec(build_message))))


def buffer(w: World, queue: str) -> FifoBuffer:
    found = w.vhost.queues[queue].buffer
    assert isinstance(found, FifoBuffer)
    return found


def test_tail_is_paged_and_comes_back_in_order(w: World, pages: Pages) -> None:
    w.declare_queue("q")
    for i in range(100):
        w.publish("", "q", b"m%d" % i)
    paged = buffer(w, "q")
    assert len(paged.ready) == LIMIT
    assert paged.paged == 90
    assert w.vhost.queues["q"].message_count == 100
    assert os.listdir(pages.directory)
    assert w.bodies("q") == [b"m%d" % i for i in range(100)]
    assert paged.paged == 0


def test_publishes_while_paged_stay_behind_the_paged_tail(w: World) -> None:
    w.declare_queue("q")
    for i in range(30):
        w.publish("", "q", b"m%d" % i)
    got = [w.get("q", no_ack=True)[2] for _ in range(15)]
    for i in range(30, 40):
        w.publish("", "q", b"m%d" % i)
    assert got + w.bodies("q") == [b"m%d" % i for i in range(40)]


def test_consumer_drains_a_paged_queue(w: World) -> None:
    w.declare_queue("q")
    for i in range(50):
        w.publish("", "q", b"m%d" % i)
    w.consume("q", "c", no_ack=True)
    assert [d[3] for d in w.deliveries()] == [b"m%d" % i for i in range(50)]


def test_requeue_of_a_paged_message_keeps_its_place(w: World) -> None:
    w.declare_queue("q")
    for i in range(30):
        w.publish("", "q", b"m%d" % i)
    first = w.get("q")
    w.nack(first[0])
    assert w.bodies("q") == [b"m%d" % i for i in range(30)]


def test_purge_and_delete_drop_the_pages(w: World, pages: Pages) -> None:
    w.declare_queue("q")
    for i in range(30):
        w.publish("", "q", b"m%d" % i)
    w.call(commands.Queue.Purge(queue="q"))
    assert w.vhost.queues["q"].message_count == 0
    assert w.get("q") is None
    for i in range(30):
        w.publish("", "q", b"n%d" % i)
    w.call(commands.Queue.Delete(queue="q"))
    assert os.listdir(pages.directory) == []


def test_paged_messages_keep_their_ttl(w: World) -> None:
    w.declare_queue("q2", arguments={"x-message-ttl": 3_600_000})
    for i in range(30):
        w.publish("", "q2", b"m%d" % i)
    entries = list(buffer(w, "q2"))
    assert len(entries) == 30
    assert all(entry.expires_at is not None for entry in entries)
    assert w.bodies("q2") == [b"m%d" % i for i in range(30)]


def test_priority_queues_are_not_paged(w: World) -> None:
    w.declare_queue("p", arguments={"x-max-priority": 5})
    for i in range(30):
        w.publish("", "p", b"m%d" % i)
    assert w.vhost.queues["p"].message_count == 30
    assert len(w.bodies("p")) == 30


def test_without_a_data_dir_pages_are_unnamed_files(tmp_path: Path) -> None:
    """Nothing to leave behind when the process is killed."""
    pages = Pages(None)
    page_file = pages.open()
    page_file.append(b"record")
    assert page_file.read(1) == [b"record"]
    assert all(chunk.path is None for chunk in page_file.chunks)
    page_file.close()
