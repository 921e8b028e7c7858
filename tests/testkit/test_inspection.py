"""The embedded broker's inspection API, driven by real pika and aio-pika clients: snapshots
of queues, messages, consumers, exchanges, bindings and connections, and the waits whose
errors say what the broker holds."""

from __future__ import annotations

import asyncio

import aio_pika
import pika
import pytest

from amqpbroker.testing import EmbeddedBroker

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def channel(amqp_broker: EmbeddedBroker):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    yield connection.channel()
    connection.close()


def test_queue_counts_and_peeked_messages(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.queue_declare("jobs", durable=True, arguments={"x-max-length": 10})
    for n in range(3):
        channel.basic_publish("", "jobs", f"job {n}".encode(), pika.BasicProperties(
            content_type="text/plain", delivery_mode=2, headers={"attempt": n, "who": "me"}))
    info = amqp_broker.wait_for_queue_depth("jobs", 3)
    assert (info.ready, info.unacked, info.consumers, info.durable) == (3, 0, 0, True)
    assert info.arguments == {"x-max-length": 10}
    messages = amqp_broker.messages("jobs")
    assert [m.text for m in messages] == ["job 0", "job 1", "job 2"]
    first = messages[0]
    assert first.properties == {"content_type": "text/plain", "delivery_mode": 2}
    assert first.headers == {"attempt": 0, "who": "me"}
    assert (first.exchange, first.routing_key, first.redelivered) == ("", "jobs", False)
    assert amqp_broker.queue("jobs").ready == 3  # peeking consumed nothing


def test_unacked_redelivered_and_acked(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.queue_declare("work")
    channel.basic_publish("", "work", b"a")
    amqp_broker.wait_for_queue_depth("work", 1)
    method, _, _ = channel.basic_get("work")
    info = amqp_broker.queue("work")
    assert (info.ready, info.unacked, info.depth) == (0, 1, 1)
    assert [m.body for m in amqp_broker.unacked_messages("work")] == [b"a"]
    channel.basic_nack(method.delivery_tag, requeue=True)
    assert amqp_broker.wait_for_message("work").redelivered
    method, _, _ = channel.basic_get("work")
    channel.basic_ack(method.delivery_tag)
    assert amqp_broker.wait_until_acked("work").depth == 0


def test_consumers_exchanges_bindings_connections(amqp_broker: EmbeddedBroker,
                                                  channel) -> None:
    channel.exchange_declare("events", "topic", durable=True)
    channel.queue_declare("audit")
    channel.queue_bind("audit", "events", "order.*")
    channel.basic_qos(prefetch_count=7)
    channel.basic_consume("audit", lambda *args: None, consumer_tag="auditor")
    [consumer] = amqp_broker.wait_for_consumers("audit", 1)
    assert (consumer.tag, consumer.prefetch, consumer.ack_required) == ("auditor", 7, True)
    [connection] = amqp_broker.connections()
    assert consumer.connection == connection.name
    assert connection.client_properties["product"] == "Pika Python Client Library"
    assert (connection.user, connection.channels) == ("guest", 1)
    exchange = next(x for x in amqp_broker.exchanges() if x.name == "events")
    assert (exchange.type, exchange.durable) == ("topic", True)
    assert {(b.source, b.destination, b.routing_key) for b in amqp_broker.bindings()} >= {
        ("events", "audit", "order.*"), ("", "audit", "audit")}


def test_dead_lettered_by_reason(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.exchange_declare("dlx", "fanout")
    channel.queue_declare("dead")
    channel.queue_bind("dead", "dlx")
    channel.queue_declare("live", arguments={"x-dead-letter-exchange": "dlx"})
    channel.basic_publish("", "live", b"bad")
    amqp_broker.wait_for_queue_depth("live", 1)
    method, _, _ = channel.basic_get("live")
    channel.basic_reject(method.delivery_tag, requeue=False)
    amqp_broker.wait_for_queue_depth("dead", 1)
    [dead] = amqp_broker.dead_lettered("rejected")
    assert dead.body == b"bad"
    assert dead.x_death[0]["queue"] == "live"
    assert dead.x_death[0]["reason"] == "rejected"
    assert amqp_broker.dead_lettered("expired") == []


def test_confirms_outstanding_settle_to_zero(amqp_broker: EmbeddedBroker, channel) -> None:
    channel.confirm_delivery()
    channel.queue_declare("c")
    channel.basic_publish("", "c", b"x")
    assert amqp_broker.confirms_outstanding() == 0
    assert amqp_broker.call(lambda: next(
        ch.publish_seq for client in amqp_broker.server.clients
        for ch in client.session.channels.values())) == 1


def test_a_wait_that_times_out_says_what_the_queue_holds(amqp_broker: EmbeddedBroker,
                                                         channel) -> None:
    channel.queue_declare("jobs")
    for body in (b"one", b"two", b"three"):
        channel.basic_publish("", "jobs", body)
    channel.basic_get("jobs")
    amqp_broker.wait_for_queue_depth("jobs", 3)
    with pytest.raises(AssertionError) as raised:
        amqp_broker.wait_for_queue_depth("jobs", 5, timeout=0.1)
    assert str(raised.value) == (
        "timed out after 0.1s waiting for queue 'jobs' to hold 5 messages: queue 'jobs' "
        "has 2 ready, 1 unacked, 0 consumers: b'two', b'three'")
    with pytest.raises(AssertionError, match=r"no queue 'nope' in vhost '/' \(queues: jobs\)"):
        amqp_broker.queue("nope")
    with pytest.raises(AssertionError, match="waiting for a matching message"):
        amqp_broker.wait_for_message("jobs", lambda m: m.body == b"four", timeout=0.05)


async def test_async_waits_let_the_client_run(amqp_broker: EmbeddedBroker) -> None:
    connection = await aio_pika.connect(amqp_broker.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("jobs")
        got: list[bytes] = []

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.append(message.body)
            await asyncio.sleep(0.05)  # an ack after the test started waiting
            await message.ack()

        await queue.consume(handle)
        await amqp_broker.aio.wait_for_consumers("jobs", 1)
        await channel.default_exchange.publish(aio_pika.Message(b"job"), "jobs")
        info = await amqp_broker.aio.wait_until_acked("jobs")
        assert info.depth == 0 and got == [b"job"]
        [conn] = await amqp_broker.aio.wait_for_connections(1)
        assert conn.client_properties["product"] == "aiormq"


async def test_in_loop_broker_waits() -> None:
    from amqpbroker.testing import running_broker

    async with running_broker() as broker:
        connection = await aio_pika.connect(broker.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue("q")
            await channel.default_exchange.publish(aio_pika.Message(b"m"), "q")
            message = await broker.aio.wait_for_message("q", lambda m: m.text == "m")
            assert message.routing_key == "q"
            assert broker.queue("q").ready == 1
