"""Retained messages in the broker's store: they survive a restart with a data directory,
properties included, and a cleared topic stays cleared."""

from __future__ import annotations

from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mqtt_clients import V5, Client
from support.processes import free_port

from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(60)


def _retained(broker: EmbeddedBroker, topic_filter: str, count: int) -> list[tuple]:
    client = Client(broker.server.frontend_ports["mqtt"], "reader", version=V5)
    try:
        client.connected()
        client.subscribe(topic_filter, 1)
        messages = [client.message() for _ in range(count)]
        client.no_message()
    finally:
        client.close()
    return sorted((m.topic, m.payload, m.qos, m.retain,
                   getattr(m.properties, "ContentType", None),
                   getattr(m.properties, "UserProperty", None)) for m in messages)


def test_retained_messages_survive_restarts(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker:
        pub = Client(broker.server.frontend_ports["mqtt"], "pub", version=V5)
        pub.connected()
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "text/plain"
        props.UserProperty = ("k", "v")
        pub.publish("keep/a", b"\x00binary\xff", 1, retain=True, properties=props)
        pub.publish("keep/b", b"B", 0, retain=True)
        pub.publish("keep/c", b"C", 1, retain=True)
        pub.publish("keep/c", b"", 1, retain=True)  # cleared before the restart
        pub.publish("keep/b", b"B2", 1, retain=True)  # replaced
        pub.close()
        broker.restart()
        assert _retained(broker, "keep/#", 2) == [
            ("keep/a", b"\x00binary\xff", 1, True, "text/plain", [("k", "v")]),
            ("keep/b", b"B2", 1, True, None, None)]
        pub = Client(broker.server.frontend_ports["mqtt"], "pub", version=V5)
        pub.connected()
        pub.publish("keep/a", b"", 1, retain=True)  # cleared after the first restart
        pub.close()
        broker.restart()
        assert _retained(broker, "keep/#", 1) == [("keep/b", b"B2", 1, True, None, None)]


def test_retained_messages_are_per_vhost_in_the_store(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker, \
            broker.new_vhost("other"):
        other = Client(broker.server.frontend_ports["mqtt"], "other-pub",
                       username="other:guest")
        other.connected()
        other.publish("v/x", b"other vhost", 1, retain=True)
        other.close()
        broker.restart()
        port = broker.server.frontend_ports["mqtt"]
        default = Client(port, "default-sub")
        elsewhere = Client(port, "other-sub", username="other:guest")
        try:
            default.connected()
            elsewhere.connected()
            default.subscribe("v/x", 1)
            elsewhere.subscribe("v/x", 1)
            assert elsewhere.message().payload == b"other vhost"
            default.no_message()
        finally:
            default.close()
            elsewhere.close()
