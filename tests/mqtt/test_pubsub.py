"""MQTT publish/subscribe with paho-mqtt (3.1.1 and 5), and across MQTT and AMQP."""

from __future__ import annotations

from collections.abc import Callable

import pika
import pytest
from support.mqtt_clients import V5, V311, Client

from amqpbroker.testing import EmbeddedBroker

pytestmark = pytest.mark.timeout(60)
VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5"])


@VERSIONS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe(mqtt_client: Callable[..., Client], version: int, qos: int) -> None:
    sub = mqtt_client("sub", version=version)
    assert sub.connected()[1] == 0
    assert [int(code.value if hasattr(code, "value") else code)
            for code in sub.subscribe("t/+/x", qos)] == [qos]
    pub = mqtt_client("pub", version=version)
    pub.connected()
    pub.publish("t/a/x", b"one", qos)
    pub.publish("t/a/y", b"not matched", qos)
    pub.publish("t/b/x", b"two", qos)
    got = [sub.message(), sub.message()]
    assert [(m.topic, m.payload, m.qos) for m in got] == [("t/a/x", b"one", qos),
                                                          ("t/b/x", b"two", qos)]
    sub.no_message()


def test_mqtt_to_amqp(mqtt_broker: EmbeddedBroker, mqtt_client: Callable[..., Client],
                      amqp: pika.BlockingConnection) -> None:
    channel = amqp.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", "sensors.*.temp")
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("sensors/k1/temp", b"21.5", 1)
    method, props, body = _get(channel, queue)
    assert (method.routing_key, body) == ("sensors.k1.temp", b"21.5")
    assert props.delivery_mode == 2
    assert props.headers == {"x-mqtt-publish-qos": 1, "x-mqtt-dup": False}
    pub.publish("sensors/k2/temp", b"20", 0)
    method, props, body = _get(channel, queue)
    assert props.delivery_mode == 1 and props.headers["x-mqtt-publish-qos"] == 0


def _get(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str
         ) -> tuple[pika.spec.Basic.GetOk, pika.BasicProperties, bytes]:
    for method, props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=10):
        assert method is not None, "no message"
        channel.cancel()
        return method, props, body
    raise AssertionError("no message")


@VERSIONS
def test_amqp_to_mqtt(mqtt_client: Callable[..., Client],
                      amqp: pika.BlockingConnection, version: int) -> None:
    sub = mqtt_client("sub", version=version)
    sub.connected()
    sub.subscribe("home/#", 1)
    channel = amqp.channel()
    channel.basic_publish("amq.topic", "home.kitchen.light", b"on")
    channel.basic_publish("amq.topic", "home.odd", b"odd headers", pika.BasicProperties(
        headers={"x-mqtt-publish-qos": "one", "nested": {"a": [1, "x", None]}, "n": 7,
                 "b": b"\xff\x00"}))
    first, second = sub.message(), sub.message()
    assert (first.topic, first.payload, first.qos) == ("home/kitchen/light", b"on", 1)
    assert (second.topic, second.payload) == ("home/odd", b"odd headers")
    if version == V5:
        assert ("n", "7") in second.properties.UserProperty


def test_qos1_unacked_is_redelivered_with_dup(mqtt_broker: EmbeddedBroker,
                                              mqtt_client: Callable[..., Client]) -> None:
    sub = mqtt_client("keep", clean=False)
    sub.connected()
    sub.subscribe("q/1", 1)
    sub.drop()
    pub = mqtt_client("pub")
    pub.connected()
    pub.publish("q/1", b"while away", 1)
    again = mqtt_client("keep", clean=False)
    assert again.connected()[0] is True
    message = again.message()
    assert (message.topic, message.payload, message.qos) == ("q/1", b"while away", 1)
