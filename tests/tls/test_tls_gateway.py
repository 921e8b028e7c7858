"""MQTT and STOMP over TLS (RabbitMQ's 8883 and 61614), on the broker's one certificate:
paho-mqtt and stomp.py connect over TLS and meet an AMQP publisher."""

from __future__ import annotations

import queue
import ssl
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pika
import pytest
import stomp
from paho.mqtt.enums import CallbackAPIVersion
from support.processes import free_port

from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def broker(files: dict[str, Path]) -> Iterator[EmbeddedBroker]:
    with broker_in_thread(tls_cert=str(files["cert"]), tls_key=str(files["key"]), tls_port=0,
                          mqtt_tls_port=free_port(), stomp_tls_port=free_port()) as embedded:
        yield embedded


def publish(broker: EmbeddedBroker, exchange: str, key: str, body: bytes) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    connection.channel().basic_publish(exchange, key, body)
    connection.close()


def test_mqtt_over_tls(broker: EmbeddedBroker, files: dict[str, Path]) -> None:
    port = broker.server.frontend_ports["mqtt/ssl"]
    connected: queue.Queue[object] = queue.Queue()
    got: queue.Queue[paho.MQTTMessage] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="secure")
    client.tls_set_context(ssl.create_default_context(cafile=str(files["ca"])))
    client.username_pw_set("guest", "guest")
    client.on_connect = lambda *args: connected.put(args[3])
    client.on_message = lambda _c, _u, message: got.put(message)
    client.connect("localhost", port)
    client.loop_start()
    try:
        assert not connected.get(timeout=10).is_failure
        client.subscribe("alerts/#", qos=1)
        broker.wait_for_consumers("mqtt-subscription-secureqos1", 1)
        publish(broker, "amq.topic", "alerts.fire", b"hot")
        message = got.get(timeout=10)
        assert (message.topic, message.payload) == ("alerts/fire", b"hot")
    finally:
        client.loop_stop()
        client.disconnect()


def test_stomp_over_tls(broker: EmbeddedBroker, files: dict[str, Path]) -> None:
    port = broker.server.frontend_ports["stomp/ssl"]
    connection = stomp.Connection12([("localhost", port)], vhost="/")
    connection.set_ssl([("localhost", port)], ca_certs=str(files["ca"]))
    listener = stomp.listener.TestListener()
    connection.set_listener("test", listener)
    connection.connect("guest", "guest", wait=True)
    try:
        connection.subscribe("/queue/secure", id="1", ack="auto")
        broker.wait_for_consumers("secure", 1)
        publish(broker, "", "secure", b"sealed")
        listener.wait_for_message()
        assert listener.get_latest_message()[1] == "sealed"
    finally:
        connection.disconnect()


def test_without_a_certificate_nothing_listens_for_tls() -> None:
    with broker_in_thread(mqtt_tls_port=free_port(), stomp_tls_port=free_port()) as plain:
        assert not {"mqtt/ssl", "stomp/ssl"} & set(plain.server.frontend_ports)
