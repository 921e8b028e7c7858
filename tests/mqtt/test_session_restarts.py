"""What a persistent MQTT session keeps across a broker restart with a data directory:
MQTT 5 subscription options (in the bindings of its queue) and the QoS 2 packet ids in
flight both ways (a runtime record of the store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mqtt_clients import V5, Client
from support.processes import free_port

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
