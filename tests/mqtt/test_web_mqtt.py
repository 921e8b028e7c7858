"""MQTT over WebSocket (as RabbitMQ's Web MQTT): paho-mqtt's websockets transport on
`--web-mqtt-port` at `/ws`, meeting plain MQTT and AMQP clients on the same topics."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import paho.mqtt.client as paho
import pika
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.processes import free_port

from amqpbroker.management import shapes
from amqpbroker.testing import EmbeddedBroker, broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(30)


WEB_PORT = free_port()


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with broker_in_thread(mqtt_port=free_port(), web_mqtt_port=WEB_PORT) as embedded:
        yield embedded


def web_client(client_id: str) -> tuple[paho.Client, queue.Queue]:
    got: queue.Queue[paho.MQTTMessage] = queue.Queue()
    connected: queue.Queue[object] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         transport="websockets")
    client.ws_set_options(path="/ws")
    client.username_pw_set("guest", "guest")
    client.on_connect = lambda *args: connected.put(args[3])
    client.on_message = lambda _c, _u, message: got.put(message)
    client.connect("127.0.0.1", WEB_PORT)
    client.loop_start()
    assert not connected.get(timeout=10).is_failure
    return client, got


def test_web_mqtt_meets_amqp_and_shows_in_management(broker: EmbeddedBroker) -> None:
    client, got = web_client("browser-1")
    try:
        client.subscribe("sensors/+/temp", qos=1)
        broker.wait_for_consumers("mqtt-subscription-browser-1qos1", 1)
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        connection.channel().basic_publish("amq.topic", "sensors.kitchen.temp", b"21.5")
        message = got.get(timeout=10)
        assert (message.topic, message.payload) == ("sensors/kitchen/temp", b"21.5")
        connection.close()
        wait_for(lambda: len(broker.connections()) == 1, what="the AMQP client gone")
        [protocol] = broker.call(lambda: [shapes.connection(c)["protocol"]
                                          for c in broker.server.clients])
        assert protocol == "Web MQTT 3.1.1"
    finally:
        client.loop_stop()
        client.disconnect()
