"""Policies set at runtime (through the model API, on the broker's loop) change how
queues behave for aio-pika clients at once: message TTL for messages published after the
policy, dead-lettering, length limits dropping the excess live; and policies imported
from a definitions file survive a restart with a data directory (pika)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pika
import pytest
from aio_pika import ExchangeType, Message
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import DeliveryError
from integration_support import DEFAULT_TIMEOUT, Connector, async_wait_for, passive

from amqpbroker.broker.policies import Policy
from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(30)


def set_policy(broker: EmbeddedBroker, name: str, pattern: str, definition: dict[str, Any],
               **kwargs: Any) -> Policy:
    """VirtualHost.set_policy on vhost '/', run on the broker's event loop."""
    vhost = broker.server.broker.vhosts["/"]
    return broker.call(lambda: vhost.set_policy(name, pattern, definition, **kwargs))


def clear_policy(broker: EmbeddedBroker, name: str) -> bool:
    vhost = broker.server.broker.vhosts["/"]
    return broker.call(lambda: vhost.clear_policy(name))


def queue_state(broker: EmbeddedBroker, name: str) -> tuple[int, str | None]:
    """(ready messages, name of the policy in force) of a queue, read on the loop."""
    def read() -> tuple[int, str | None]:
        queue = broker.server.broker.vhosts["/"].queues[name]
        return queue.message_count, queue.policy.name if queue.policy else None
    return broker.call(read)


async def dead_letter_sink(channel: AbstractChannel, name: str) -> AbstractQueue:
    dlx = await channel.declare_exchange(name, ExchangeType.FANOUT)
    sink = await channel.declare_queue(f"{name}.sink")
    await sink.bind(dlx)
    return sink


async def drain(queue: AbstractQueue, count: int) -> list[AbstractIncomingMessage]:
    """Basic.Get (no_ack) until `count` messages came, polling with a deadline."""
    got: list[AbstractIncomingMessage] = []

    async def more() -> bool:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
        return len(got) >= count

    await async_wait_for(more, what=f"{count} messages in {queue.name}")
    return got


async def test_message_ttl_policy_governs_messages_published_after_it(
        connect_plain: Connector, amqp_broker: EmbeddedBroker) -> None:
    connection = await connect_plain()
    channel = await connection.channel()
    sink = await dead_letter_sink(channel, "pol.ttl.dlx")
    before = await channel.declare_queue("pol.ttl.before")
    after = await channel.declare_queue("pol.ttl.after")
    await channel.default_exchange.publish(Message(b"old"), routing_key=before.name)
    await async_wait_for(lambda: queue_state(amqp_broker, before.name)[0] == 1,
                         what="the first message to be queued")

    set_policy(amqp_broker, "ttl", r"^pol\.ttl\.(before|after)$",
               {"message-ttl": 200, "dead-letter-exchange": "pol.ttl.dlx"},
               apply_to="queues")
    assert queue_state(amqp_broker, before.name) == (1, "ttl")
    await channel.default_exchange.publish(Message(b"new"), routing_key=after.name)

    (expired,) = await drain(sink, 1)
    assert expired.body == b"new"
    assert expired.headers["x-death"][0]["reason"] == "expired"
    # More than the TTL has passed since the policy applied; the message queued before it
    # has no expiry (RabbitMQ: the TTL is fixed when a message is enqueued).
    assert (await passive(channel, before.name)).message_count == 1


async def test_dead_letter_exchange_policy_applies_to_an_existing_queue(
        connect_plain: Connector, amqp_broker: EmbeddedBroker) -> None:
    connection = await connect_plain()
    channel = await connection.channel()
    sink = await dead_letter_sink(channel, "pol.dlx")
    queue = await channel.declare_queue("pol.dlx.work")
    await channel.default_exchange.publish(Message(b"first"), routing_key=queue.name)
    first = await queue.get(timeout=DEFAULT_TIMEOUT)
    await first.reject(requeue=False)  # no dead-letter exchange yet: dropped
    await passive(channel, queue.name)  # a round trip: the reject has been handled

    set_policy(amqp_broker, "dlx", r"^pol\.dlx\.work$", {"dead-letter-exchange": "pol.dlx"})
    await channel.default_exchange.publish(Message(b"second"), routing_key=queue.name)
    second = await queue.get(timeout=DEFAULT_TIMEOUT)
    await second.reject(requeue=False)

    (dead,) = await drain(sink, 1)
    assert dead.body == b"second"
    assert dead.headers["x-death"][0]["reason"] == "rejected"
    assert (await passive(channel, sink.name)).message_count == 0


async def test_lowering_max_length_drops_the_excess_live_then_clearing_restores(
        connect_plain: Connector, amqp_broker: EmbeddedBroker) -> None:
    connection = await connect_plain()
    channel = await connection.channel()
    sink = await dead_letter_sink(channel, "pol.len.dlx")
    queue = await channel.declare_queue("pol.len", arguments={"x-max-length": 10})
    for n in range(5):
        await channel.default_exchange.publish(Message(str(n).encode()),
                                               routing_key=queue.name)
    await async_wait_for(lambda: queue_state(amqp_broker, queue.name)[0] == 5,
                         what="five messages to be queued")

    set_policy(amqp_broker, "cap", r"^pol\.len$",
               {"max-length": 2, "dead-letter-exchange": "pol.len.dlx"})
    assert queue_state(amqp_broker, queue.name) == (2, "cap")
    dropped = await drain(sink, 3)
    assert [m.body for m in dropped] == [b"0", b"1", b"2"]
    assert {m.headers["x-death"][0]["reason"] for m in dropped} == {"maxlen"}

    assert clear_policy(amqp_broker, "cap")
    for n in range(5, 14):  # 2 + 9 messages: one over the argument's limit of 10
        await channel.default_exchange.publish(Message(str(n).encode()),
                                               routing_key=queue.name)
    await async_wait_for(lambda: queue_state(amqp_broker, queue.name) == (10, None),
                         what="the queue to hold its x-max-length of 10 again")
    kept = await drain(queue, 10)
    assert [m.body for m in kept] == [str(n).encode() for n in range(4, 14)]
    # The argument alone has no dead-letter exchange: message 3 was dropped, not sent on.
    assert (await passive(channel, sink.name)).message_count == 0


async def test_a_queue_declared_after_the_policy_gets_it(
        connect_plain: Connector, amqp_broker: EmbeddedBroker) -> None:
    set_policy(amqp_broker, "one", r"^pol\.new\.", {"max-length": 1, "overflow":
                                                   "reject-publish"})
    connection = await connect_plain()
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue("pol.new.q")
    await channel.default_exchange.publish(Message(b"kept"), routing_key=queue.name)
    with pytest.raises(DeliveryError):  # nacked: the policy's reject-publish
        await channel.default_exchange.publish(Message(b"refused"), routing_key=queue.name)
    assert queue_state(amqp_broker, queue.name) == (1, "one")


def _pika(broker: EmbeddedBroker) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        broker.host, broker.port, "/", pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=DEFAULT_TIMEOUT))


def test_policies_from_definitions_survive_a_restart(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions.json"
    definitions.write_text(json.dumps({
        "policies": [{"vhost": "/", "name": "limit", "pattern": "^kept$",
                      "apply-to": "queues", "definition": {"max-length": 2},
                      "priority": 0}],
        "operator_policies": [{"vhost": "/", "name": "cap", "pattern": ".*",
                               "apply-to": "queues", "definition": {"max-length": 1},
                               "priority": 0}],
        "queues": [{"name": "kept", "vhost": "/", "durable": True, "auto_delete": False,
                    "arguments": {}}],
    }))
    data_dir = tmp_path / "data"
    with broker_in_thread(data_dir=str(data_dir), definitions=str(definitions)) as broker:
        assert queue_state(broker, "kept") == (0, "limit")
        set_policy(broker, "runtime", "^later$", {"max-length": 3})

    with broker_in_thread(data_dir=str(data_dir)) as restarted:
        assert queue_state(restarted, "kept") == (0, "limit")
        connection = _pika(restarted)
        try:
            channel = connection.channel()
            channel.queue_declare("later", durable=True)
            for body in (b"a", b"b", b"c"):
                channel.basic_publish("", "kept", body)
                channel.basic_publish("", "later", body)
            assert channel.queue_declare("later", durable=True).method.message_count == 1
            assert channel.queue_declare("kept", passive=True).method.message_count == 1
            _, _, body = channel.basic_get("kept", auto_ack=True)
            assert body == b"c"  # the operator policy's cap of 1 (drop-head)
        finally:
            connection.close()
        names = restarted.call(lambda: (
            sorted(restarted.server.broker.vhosts["/"].policies),
            sorted(restarted.server.broker.vhosts["/"].operator_policies)))
        assert names == (["limit", "runtime"], ["cap"])
