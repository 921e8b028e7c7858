"""kombu with the pyamqp:// transport against the broker: queues, exchanges, ack, requeue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.message import Message

pytestmark = pytest.mark.timeout(20)

TIMEOUT = 5.0


@pytest.fixture
def kombu_url(amqp_url: str) -> str:
    assert amqp_url.startswith("amqp://")
    return "pyamqp://" + amqp_url.removeprefix("amqp://")


@pytest.fixture
def connection(kombu_url: str) -> Iterator[Connection]:
    with Connection(kombu_url, connect_timeout=TIMEOUT) as conn:
        conn.connect()
        yield conn


def drain_until(connection: Connection, done: Any, timeout: float = TIMEOUT) -> None:
    """Drain events until `done()` is true; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("timed out waiting for deliveries")
        try:
            connection.drain_events(timeout=min(remaining, 0.5))
        except TimeoutError:
            continue


def ready(connection: Connection, name: str) -> int:
    channel = connection.channel()
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    finally:
        channel.close()


def test_simple_queue_put_get(connection: Connection):
    queue = connection.SimpleQueue("kb.simple")
    try:
        queue.put({"hello": "world", "n": [1, 2, 3]})
        queue.put(b"raw bytes", serializer=None, content_type="application/data",
                  content_encoding="binary")
        first = queue.get(block=True, timeout=TIMEOUT)
        assert first.payload == {"hello": "world", "n": [1, 2, 3]}
        assert first.content_type == "application/json"
        first.ack()
        second = queue.get(block=True, timeout=TIMEOUT)
        assert second.body == b"raw bytes"
        second.ack()
        with pytest.raises(queue.Empty):
            queue.get(block=False)
        assert queue.qsize() == 0
    finally:
        queue.close()


def test_producer_consumer_direct_exchange(connection: Connection):
    exchange = Exchange("kb.direct", type="direct", durable=False)
    wanted = Queue("kb.direct.q", exchange, routing_key="wanted", durable=False)
    received: list[tuple[Any, Message]] = []
    with connection.channel() as channel:
        producer = Producer(channel, exchange=exchange, serializer="json")
        with Consumer(channel, [wanted], callbacks=[
                lambda body, message: received.append((body, message))]):
            for index in range(3):
                producer.publish({"index": index}, routing_key="wanted")
                producer.publish({"index": -1}, routing_key="unwanted")
            drain_until(connection, lambda: len(received) >= 3)
            assert [body for body, _ in received] == [{"index": i} for i in range(3)]
            assert all(m.delivery_info["routing_key"] == "wanted" for _, m in received)
            assert all(m.delivery_info["exchange"] == "kb.direct" for _, m in received)
            for _, message in received:
                message.ack()
    assert ready(connection, "kb.direct.q") == 0


def test_producer_consumer_topic_exchange(connection: Connection):
    exchange = Exchange("kb.topic", type="topic", durable=False)
    queue = Queue("kb.topic.q", exchange, routing_key="stock.*.nyse", durable=False)
    received: list[str] = []

    def on_message(body: Any, message: Message) -> None:
        received.append(message.delivery_info["routing_key"])
        message.ack()

    with connection.channel() as channel:
        producer = Producer(channel, exchange=exchange, serializer="json")
        with Consumer(channel, [queue], callbacks=[on_message]):
            for key in ("stock.ibm.nyse", "stock.ibm.nasdaq", "stock.nyse",
                        "stock.a.b.nyse", "stock.msft.nyse", "stock.end.nyse"):
                producer.publish({"key": key}, routing_key=key)
            # The queue is FIFO: once the last matching key arrives, every earlier
            # match has been delivered too.
            drain_until(connection, lambda: "stock.end.nyse" in received)
    assert received == ["stock.ibm.nyse", "stock.msft.nyse", "stock.end.nyse"]


def test_unacked_message_comes_back_acked_one_does_not(kombu_url: str):
    exchange = Exchange("kb.ack", type="direct", durable=False)
    queue = Queue("kb.ack.q", exchange, routing_key="k", durable=False)
    with Connection(kombu_url, connect_timeout=TIMEOUT) as connection:
        with connection.channel() as channel:
            producer = Producer(channel, exchange=exchange)
            queue.declare(channel=channel)
            producer.publish("acked", routing_key="k", serializer="json")
            producer.publish("not-acked", routing_key="k", serializer="json")
            received: list[Message] = []
            with Consumer(channel, [queue], callbacks=[lambda body, m: received.append(m)]):
                drain_until(connection, lambda: len(received) >= 2)
            assert [m.payload for m in received] == ["acked", "not-acked"]
            received[0].ack()
            assert ready(connection, "kb.ack.q") == 0  # both held by this channel
        # The channel closed with one message unacked: it is back in the queue.
        assert ready(connection, "kb.ack.q") == 1
        with connection.channel() as channel:
            message = queue(channel).get(no_ack=True)
            assert message is not None
            assert message.payload == "not-acked"
            assert message.delivery_info["redelivered"] is True


def test_message_requeue_redelivers(connection: Connection):
    exchange = Exchange("kb.requeue", type="direct", durable=False)
    queue = Queue("kb.requeue.q", exchange, routing_key="k", durable=False)
    deliveries: list[tuple[Any, bool]] = []

    def on_message(body: Any, message: Message) -> None:
        deliveries.append((body, message.delivery_info["redelivered"]))
        if len(deliveries) == 1:
            message.requeue()
        else:
            message.ack()

    with connection.channel() as channel:
        producer = Producer(channel, exchange=exchange, serializer="json")
        queue.declare(channel=channel)
        producer.publish({"job": 1}, routing_key="k")
        with Consumer(channel, [queue], callbacks=[on_message]):
            drain_until(connection, lambda: len(deliveries) >= 2)
    assert deliveries == [({"job": 1}, False), ({"job": 1}, True)]
    assert ready(connection, "kb.requeue.q") == 0
