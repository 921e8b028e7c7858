"""Behaviours real client libraries rely on, driven through those libraries: token refresh
(Update-Secret), high channel numbers, Delete-Ok before the Basic.Cancel it causes
(py-amqp/kombu), unbinding after an auto-delete chain went, and topic permissions."""

from __future__ import annotations

import aio_pika
import amqp
import pika
import pika.exceptions
import pytest
from aiormq.exceptions import ChannelAccessRefused
from integration_support import DEFAULT_TIMEOUT

from amqpbroker.testing import EmbeddedBroker

pytestmark = pytest.mark.timeout(30)


def _pika(broker: EmbeddedBroker, user: str = "guest",
          password: str = "guest") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        broker.host, broker.port, "/", pika.PlainCredentials(user, password),
        connection_attempts=1, socket_timeout=DEFAULT_TIMEOUT))


def test_pika_update_secret_keeps_the_connection(amqp_broker: EmbeddedBroker) -> None:
    connection = _pika(amqp_broker)
    try:
        connection.update_secret("a-refreshed-token", "token refresh")
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"after refresh")
        _, _, body = channel.basic_get(queue, auto_ack=True)
        assert body == b"after refresh"
    finally:
        connection.close()


async def test_aio_pika_update_secret(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url, timeout=DEFAULT_TIMEOUT)
    async with connection:
        await connection.update_secret("a-refreshed-token", reason="refresh")
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        assert queue.name.startswith("amq.gen-")


def test_pika_opens_channel_65535(amqp_broker: EmbeddedBroker) -> None:
    connection = _pika(amqp_broker)
    try:
        channel = connection.channel(channel_number=65535)
        assert channel.channel_number == 65535
        assert channel.queue_declare("", exclusive=True).method.queue
    finally:
        connection.close()


def test_py_amqp_queue_delete_on_the_consuming_channel(amqp_broker: EmbeddedBroker) -> None:
    """py-amqp raises ConsumerCancelled when the Basic.Cancel is read: were it sent before
    Delete-Ok, `queue_delete` itself would raise."""
    connection = amqp.Connection(f"{amqp_broker.host}:{amqp_broker.port}",
                                 connect_timeout=DEFAULT_TIMEOUT)
    connection.connect()
    try:
        channel = connection.channel()
        channel.queue_declare("doomed")
        channel.basic_consume("doomed", callback=lambda message: None)
        assert channel.queue_delete("doomed") == 0
        with pytest.raises(amqp.exceptions.ConsumerCancelled):
            connection.drain_events(timeout=DEFAULT_TIMEOUT)
    finally:
        connection.close()


async def test_unbind_after_an_auto_delete_chain(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url, timeout=DEFAULT_TIMEOUT)
    async with connection:
        channel = await connection.channel()
        outer = await channel.declare_exchange("chain.outer", "fanout", auto_delete=True)
        inner = await channel.declare_exchange("chain.inner", "fanout", auto_delete=True)
        await inner.bind(outer)
        queue = await channel.declare_queue("chain.q", auto_delete=True)
        await queue.bind(inner)
        await queue.unbind(inner)  # inner goes, and with its binding, outer
        await inner.unbind(outer)  # both are gone: still Unbind-Ok
        assert not channel.is_closed


@pytest.fixture
def topic_user(amqp_broker: EmbeddedBroker) -> EmbeddedBroker:
    def setup() -> None:
        access = amqp_broker.server.broker.access
        access.add_user("sensor", "pw")
        access.set_permission("sensor", "/")
        access.set_topic_permission("sensor", "/", "amq.topic", write="^{username}\\.",
                                    read="^alerts\\.")
    amqp_broker.call(setup)
    return amqp_broker


async def test_topic_permissions_on_publish_and_bind(topic_user: EmbeddedBroker) -> None:
    url = f"amqp://sensor:pw@{topic_user.host}:{topic_user.port}/"
    connection = await aio_pika.connect(url, timeout=DEFAULT_TIMEOUT)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        topic = await channel.get_exchange("amq.topic")
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(topic, "alerts.#")
        await topic.publish(aio_pika.Message(b"ok"), "sensor.temperature")
        await channel.get_exchange("amq.direct")
        await (await channel.get_exchange("amq.direct")).publish(aio_pika.Message(b"any"),
                                                                 "other.key")
        with pytest.raises(ChannelAccessRefused) as refused:
            await topic.publish(aio_pika.Message(b"no"), "other.temperature")
        assert ("access to topic 'other.temperature' in exchange 'amq.topic' in vhost '/' "
                "refused for user 'sensor'") in str(refused.value)
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        with pytest.raises(ChannelAccessRefused):
            await queue.bind("amq.topic", "metrics.#")
