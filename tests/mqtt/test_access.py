"""MQTT and the broker's users, permissions and resource alarms."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.mqtt_clients import V5, V311, Client, RawMqtt

from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.testing import EmbeddedBroker, wait_for

pytestmark = pytest.mark.timeout(60)
Open = Callable[..., Client]


def _user(broker: EmbeddedBroker, name: str, **permission: str) -> None:
    access = broker.server.broker.access

    def add() -> None:
        access.add_user(name, "pw")
        if permission:
            access.set_permission(name, "/", **permission)

    broker.call(add)


def test_no_vhost_permission_is_not_authorized(mqtt_broker: EmbeddedBroker) -> None:
    _user(mqtt_broker, "outsider")
    conn = RawMqtt(mqtt_broker.server.frontend_ports["mqtt"])
    try:
        assert conn.connect("o", username="outsider", password=b"pw") == p.Connack(
            False, p.V3_NOT_AUTHORIZED)
    finally:
        conn.close()


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5"])
def test_publish_without_write_permission(mqtt_broker: EmbeddedBroker, version: int) -> None:
    _user(mqtt_broker, "reader", configure="^mqtt-", write="^mqtt-", read=".*")
    conn = RawMqtt(mqtt_broker.server.frontend_ports["mqtt"], version)
    try:
        assert isinstance(conn.connect("r", username="reader", password=b"pw"), p.Connack)
        conn.send_packet(p.Publish("t/1", b"x", 1, packet_id=5))
        if version == V5:
            assert conn.packet() == p.Puback(5, p.NOT_AUTHORIZED)
            conn.send_packet(p.Pingreq())
            assert conn.packet() == p.Pingresp()
        else:
            assert conn.closed()
    finally:
        conn.close()


def test_subscribe_denied_by_topic_permission(mqtt_broker: EmbeddedBroker,
                                              mqtt_client: Open) -> None:
    _user(mqtt_broker, "partial", configure=".*", write=".*", read=".*")
    access = mqtt_broker.server.broker.access
    mqtt_broker.call(lambda: access.set_topic_permission("partial", "/", "amq.topic",
                                                         read="^open\\."))
    client = mqtt_client("partial", username="partial", password="pw")
    client.connected()
    codes = client.subscribe("open/x", 1)
    assert [int(getattr(c, "value", c)) for c in codes] == [1]
    codes = client.subscribe("secret/x", 1)
    assert [int(getattr(c, "value", c)) for c in codes] == [0x80]


def test_alarm_stops_reading_publishers(mqtt_broker: EmbeddedBroker,
                                        mqtt_client: Open) -> None:
    sub = mqtt_client("sub")
    sub.connected()
    sub.subscribe("f/#", 1)
    pub = mqtt_client("pub")
    pub.connected()
    mqtt_broker.block_publishers()
    info = pub.paho.publish("f/1", b"held", 1)
    sub.no_message(0.5)
    assert not info.is_published()
    mqtt_broker.unblock_publishers()
    info.wait_for_publish(10)
    assert sub.message().payload == b"held"


def test_vhost_in_username(mqtt_broker: EmbeddedBroker, mqtt_client: Open) -> None:
    with mqtt_broker.new_vhost() as vhost:
        client = mqtt_client("v", username=f"{vhost.vhost}:guest")
        assert client.connected()[1] == 0
        client.subscribe("in/vhost", 1)
        wait_for(lambda: "mqtt-subscription-vqos1" in
                 mqtt_broker.server.broker.vhosts[vhost.vhost].queues, what="the queue")
        client.close()
        wait_for(lambda: "mqtt-subscription-vqos1" not in
                 mqtt_broker.server.broker.vhosts[vhost.vhost].queues,
                 what="the clean session's queue deleted")
