"""One message, three protocols: MQTT, STOMP and AMQP publish to and consume from each
other through `amq.topic`, with their properties and headers mapped on the way."""

from __future__ import annotations

from collections.abc import Callable

import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mqtt_clients import V5, V311, Client
from support.stomp_clients import StompConnector

from amqpbroker.testing import wait_for

pytestmark = pytest.mark.timeout(60)
Open = Callable[..., Client]
Channel = pika.adapters.blocking_connection.BlockingChannel


def _bound_queue(amqp: Channel, binding: str) -> str:
    queue = amqp.queue_declare("", exclusive=True).method.queue
    amqp.queue_bind(queue, "amq.topic", binding)
    return queue


def _get(amqp: Channel, queue: str) -> tuple[pika.spec.Basic.GetOk, pika.BasicProperties,
                                                 bytes]:
    def got() -> tuple | None:
        method, props, body = amqp.basic_get(queue, auto_ack=True)
        return (method, props, body) if method is not None else None

    return wait_for(got, 10, f"a message on {queue}")


def _v5(mqtt_client: Open, client_id: str) -> Client:
    client = mqtt_client(client_id, version=V5)
    client.connected()
    return client


def test_mqtt_to_amqp(mqtt_client: Open, amqp: Channel) -> None:
    queue = _bound_queue(amqp, "m.a.*")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v"), ("trace", "t-1")]
    props.ContentType = "application/json"
    props.CorrelationData = b"corr-1"
    props.ResponseTopic = "reply/here"
    _v5(mqtt_client, "pub").publish("m/a/x", b'{"n": 1}', 1, properties=props)
    method, got, body = _get(amqp, queue)
    assert (method.exchange, method.routing_key, body) == ("amq.topic", "m.a.x", b'{"n": 1}')
    assert got.delivery_mode == 2
    assert (got.content_type, got.correlation_id, got.reply_to) == (
        "application/json", "corr-1", "reply.here")
    assert got.headers["k"] == "v" and got.headers["trace"] == "t-1"
    assert got.headers["x-mqtt-publish-qos"] == 1 and got.headers["x-mqtt-dup"] is False


def test_mqtt_qos0_is_transient_on_amqp(mqtt_client: Open, amqp: Channel) -> None:
    queue = _bound_queue(amqp, "m0.#")
    pub = mqtt_client("pub", version=V311)
    pub.connected()
    pub.publish("m0/x", b"fast", 0)
    _method, got, _body = _get(amqp, queue)
    assert got.delivery_mode == 1 and got.headers["x-mqtt-publish-qos"] == 0


def test_amqp_to_mqtt(mqtt_client: Open, amqp: Channel) -> None:
    sub = _v5(mqtt_client, "sub")
    sub.subscribe("a/m/#", 1)
    amqp.basic_publish("amq.topic", "a.m.x", b"from amqp", pika.BasicProperties(
        headers={"h": "1", "n": 5}, content_type="text/plain", correlation_id="c-9",
        reply_to="back.to.me", delivery_mode=1))
    message = sub.message()
    assert (message.topic, message.payload, message.qos) == ("a/m/x", b"from amqp", 1)
    assert sorted(message.properties.UserProperty) == [("h", "1"), ("n", "5")]
    assert message.properties.ContentType == "text/plain"
    assert message.properties.CorrelationData == b"c-9"
    assert message.properties.ResponseTopic == "back/to/me"


def test_stomp_to_amqp(stomp_connect: StompConnector, amqp: Channel) -> None:
    queue = _bound_queue(amqp, "s.a")
    connection, _collector = stomp_connect()
    connection.send("/topic/s.a", "from stomp", content_type="text/plain",
                    headers={"persistent": "true", "x-custom": "c", "correlation-id": "k1"})
    method, got, body = _get(amqp, queue)
    assert (method.exchange, method.routing_key, body) == ("amq.topic", "s.a", b"from stomp")
    assert (got.delivery_mode, got.content_type, got.correlation_id) == (2, "text/plain", "k1")
    assert got.headers["x-custom"] == "c"


def test_amqp_to_stomp(stomp_connect: StompConnector, amqp: Channel) -> None:
    connection, collector = stomp_connect()
    connection.subscribe("/topic/as.#", id="s1", ack="auto", receipt="subscribed")
    collector.wait_receipt("subscribed")
    amqp.basic_publish("amq.topic", "as.x", b"to stomp", pika.BasicProperties(
        headers={"h": "v", "n": 5, "flag": True}, delivery_mode=2, content_type="text/plain",
        message_id="m-1"))
    frame = collector.wait_messages(1)[0]
    headers = frame.headers
    assert frame.body == "to stomp" and headers["destination"] == "/topic/as.x"
    assert (headers["h"], headers["n"], headers["persistent"]) == ("v", "5", "true")
    assert (headers["content-type"], headers["amqp-message-id"]) == ("text/plain", "m-1")
    assert "flag" not in headers  # a bool header has no STOMP form


@pytest.mark.parametrize(("qos", "persistent"), [(1, "true"), (0, "1")])
def test_mqtt_to_stomp(mqtt_client: Open, stomp_connect: StompConnector, qos: int,
                       persistent: str) -> None:
    connection, collector = stomp_connect()
    connection.subscribe("/topic/ms.*", id="s1", ack="client-individual", receipt="sub")
    collector.wait_receipt("sub")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    _v5(mqtt_client, "pub").publish("ms/a", b"from mqtt", qos, properties=props)
    frame = collector.wait_messages(1)[0]
    assert (frame.body, frame.headers["destination"]) == ("from mqtt", "/topic/ms.a")
    assert frame.headers["k"] == "v" and frame.headers["persistent"] == persistent
    assert not [name for name in frame.headers if name.startswith("x-mqtt")]
    connection.ack(frame.headers["ack"])


def test_stomp_to_mqtt(mqtt_client: Open, stomp_connect: StompConnector) -> None:
    v5 = _v5(mqtt_client, "v5")
    v5.subscribe("sm/#", 1)
    v3 = mqtt_client("v3", version=V311)
    v3.connected()
    v3.subscribe("sm/+/b", 1)
    connection, _collector = stomp_connect()
    connection.send("/topic/sm.a.b", "from stomp", headers={"k": "v"})
    message = v5.message()
    assert (message.topic, message.payload, message.qos) == ("sm/a/b", b"from stomp", 1)
    assert ("k", "v") in message.properties.UserProperty
    message = v3.message()
    assert (message.topic, message.payload, message.qos) == ("sm/a/b", b"from stomp", 1)


def test_user_properties_through_amqp_to_stomp(mqtt_client: Open, amqp: Channel,
                                               stomp_connect: StompConnector) -> None:
    """MQTT 5 user properties -> AMQP headers -> STOMP headers, one message seen by all."""
    queue = _bound_queue(amqp, "chain.#")
    connection, collector = stomp_connect()
    connection.subscribe("/topic/chain.#", id="s1", ack="auto", receipt="sub")
    collector.wait_receipt("sub")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("tenant", "acme"), ("region", "eu")]
    _v5(mqtt_client, "pub").publish("chain/x", b"all", 1, properties=props)
    _method, got, _body = _get(amqp, queue)
    assert (got.headers["tenant"], got.headers["region"]) == ("acme", "eu")
    headers = collector.wait_messages(1)[0].headers
    assert (headers["tenant"], headers["region"]) == ("acme", "eu")
