"""What a persistent MQTT session keeps across a broker restart with a data directory:
MQTT 5 subscription options (in the bindings of its queue) and the QoS 2 packet ids in
flight both ways (a runtime record of the store)."""

from __future__ import annotations

from pathlib import Path

import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mqtt_clients import V5, Client, RawMqtt
from support.processes import free_port

from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(60)

OPTIONS = "x-mqtt-subscription-opts"


def _props(packet_type: int, **values: object) -> Properties:
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def _persistent(port: int, client_id: str) -> Client:
    """An MQTT 5 client that resumes its session (expiry one hour)."""
    return Client(port, client_id, version=V5, clean=False,
                  properties=_props(PacketTypes.CONNECT, SessionExpiryInterval=3600))


def _mqtt_port(broker: EmbeddedBroker) -> int:
    return broker.server.frontend_ports["mqtt"]


def _binding_options(broker: EmbeddedBroker, queue: str) -> list[dict | None]:
    return [b.arguments.get(OPTIONS) for b in broker.bindings()
            if b.destination == queue and b.source == "amq.topic"]


def test_subscription_options_survive_a_restart(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker:
        sub = _persistent(_mqtt_port(broker), "opts")
        sub.connected()
        sub.subscribe("o/#", 1, noLocal=True, retainAsPublished=True,
                      properties=_props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
        sub.close()
        assert _binding_options(broker, "mqtt-subscription-optsqos1") == [
            {"qos": 1, "no-local": True, "retain-as-published": True,
             "retain-handling": 0, "id": 7}]
        broker.restart()
        port = _mqtt_port(broker)
        again = _persistent(port, "opts")
        other = Client(port, "other", version=V5)
        try:
            assert again.connected()[0] is True  # no SUBSCRIBE again
            again.publish("o/self", b"mine", 1)
            again.no_message()  # no-local
            other.connected()
            other.publish("o/x", b"theirs", 1, retain=True)
            message = again.message()
            assert (message.topic, message.payload) == ("o/x", b"theirs")
            assert message.properties.SubscriptionIdentifier == [7]
            assert message.retain is True  # retain-as-published
        finally:
            again.close()
            other.close()


def test_a_new_subscribe_replaces_the_options(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker:
        sub = _persistent(_mqtt_port(broker), "re")
        sub.connected()
        sub.subscribe("r/#", 1, noLocal=True,
                      properties=_props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=3))
        sub.subscribe("r/#", 1)  # the same filter, no options: one binding, replaced
        sub.close()
        expected = [{"qos": 1, "no-local": False, "retain-as-published": False,
                     "retain-handling": 0}]
        assert _binding_options(broker, "mqtt-subscription-reqos1") == expected
        broker.restart()
        assert _binding_options(broker, "mqtt-subscription-reqos1") == expected
        again = _persistent(_mqtt_port(broker), "re")
        try:
            assert again.connected()[0] is True
            again.publish("r/self", b"mine", 1, retain=True)
            message = again.message()  # no longer no-local
            assert (message.payload, message.retain) == (b"mine", False)
            assert not hasattr(message.properties, "SubscriptionIdentifier")
            again.no_message()
        finally:
            again.close()


def _raw_session(port: int, client_id: str) -> tuple[RawMqtt, p.Packet]:
    """A raw MQTT 5 connection resuming the session `client_id`, and its CONNACK."""
    conn = RawMqtt(port, V5)
    return conn, conn.connect(client_id, clean_start=False,
                              properties={"session_expiry_interval": 3600})


def _sink(broker: EmbeddedBroker, queue: str, binding_key: str) -> None:
    """A durable AMQP queue bound to `amq.topic` that collects what MQTT publishes."""
    amqp = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = amqp.channel()
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, "amq.topic", binding_key)
    amqp.close()


def test_inbound_qos2_packet_ids_survive_a_restart(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker:
        _sink(broker, "q2-sink", "q2.#")
        conn, _ = _raw_session(_mqtt_port(broker), "sender")
        conn.send_packet(p.Publish("q2/a", b"once", qos=2, packet_id=5))
        assert conn.packet() == p.Pubrec(5)
        conn.close()  # no PUBREL before the restart
        broker.restart()
        assert broker.queue("q2-sink").depth == 1
        conn, connack = _raw_session(_mqtt_port(broker), "sender")
        try:
            assert isinstance(connack, p.Connack) and connack.session_present
            conn.send_packet(p.Publish("q2/a", b"once", qos=2, dup=True, packet_id=5))
            assert conn.packet() == p.Pubrec(5)  # known: not routed again
            conn.send_packet(p.Publish("q2/a", b"marker", qos=1, packet_id=6))
            assert conn.packet() == p.Puback(6)
            assert [m.body for m in broker.messages("q2-sink")] == [b"once", b"marker"]
            conn.send_packet(p.Pubrel(5))
            assert conn.packet() == p.Pubcomp(5, p.SUCCESS)
            conn.send_packet(p.Pubrel(5))
            assert conn.packet() == p.Pubcomp(5, p.PACKET_IDENTIFIER_NOT_FOUND)
        finally:
            conn.close()
        broker.restart()  # the PUBREL ended the exchange: nothing left in the store
        conn, _ = _raw_session(_mqtt_port(broker), "sender")
        try:
            conn.send_packet(p.Publish("q2/a", b"again", qos=2, dup=True, packet_id=5))
            assert conn.packet() == p.Pubrec(5)
            assert [m.body for m in broker.messages("q2-sink")][-1] == b"again"
        finally:
            conn.close()


def test_outbound_pubrel_is_sent_again_after_a_restart(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker:
        sub, _ = _raw_session(_mqtt_port(broker), "receiver")
        sub.send_packet(p.Subscribe(1, [p.Subscription("q2out/#", 2)]))
        assert isinstance(sub.packet(), p.Suback)
        pub = Client(_mqtt_port(broker), "pub", version=V5)
        pub.connected()
        pub.publish("q2out/a", b"exactly once", 2)
        pub.close()
        delivery = sub.packet()
        assert isinstance(delivery, p.Publish) and delivery.qos == 2
        sub.send_packet(p.Pubrec(delivery.packet_id))
        assert sub.packet() == p.Pubrel(delivery.packet_id)
        sub.close()  # no PUBCOMP before the restart
        broker.restart()
        sub, connack = _raw_session(_mqtt_port(broker), "receiver")
        try:
            assert isinstance(connack, p.Connack) and connack.session_present
            assert sub.packet() == p.Pubrel(delivery.packet_id)
            sub.send_packet(p.Pubcomp(delivery.packet_id))
            sub.no_packet()  # the message itself is not delivered again
        finally:
            sub.close()
        broker.restart()  # the PUBCOMP ended the exchange
        sub, _ = _raw_session(_mqtt_port(broker), "receiver")
        try:
            sub.no_packet()
        finally:
            sub.close()


@pytest.mark.parametrize("end", ["clean start", "expiry", "expiry after a restart"])
def test_the_packet_ids_go_with_the_session(tmp_path: Path, end: str) -> None:
    with broker_in_thread(mqtt_port=free_port(), data_dir=str(tmp_path)) as broker:
        _sink(broker, "ends-sink", "ends.#")
        conn, _ = _raw_session(_mqtt_port(broker), "ends")
        conn.send_packet(p.Publish("ends/a", b"first", qos=2, packet_id=9))
        assert conn.packet() == p.Pubrec(9)
        conn.close()
        broker.wait_for_connections(0)
        if end == "clean start":
            clean = RawMqtt(_mqtt_port(broker), V5)
            connack = clean.connect("ends", clean_start=True)
            assert isinstance(connack, p.Connack) and not connack.session_present
            clean.close()
        else:
            if end == "expiry after a restart":
                broker.restart()
            broker.clock.advance(3601)
        broker.restart()
        conn, connack = _raw_session(_mqtt_port(broker), "ends")
        try:
            assert isinstance(connack, p.Connack) and not connack.session_present
            conn.send_packet(p.Publish("ends/a", b"second", qos=2, dup=True, packet_id=9))
            assert conn.packet() == p.Pubrec(9)  # a new exchange: routed
            assert [m.body for m in broker.messages("ends-sink")] == [b"first", b"second"]
        finally:
            conn.close()
