"""A vhost deleted through the management API takes its MQTT state with it: retained
messages and persistent sessions are gone, from the data directory too, while another
vhost's stay."""

from __future__ import annotations

import queue
from pathlib import Path

import httpx
import pytest
from support.mqtt_clients import V5, Client, RawMqtt
from support.processes import free_port

from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(60)


def _api(broker: EmbeddedBroker) -> httpx.Client:
    port = broker._controller.settings.management_port
    return httpx.Client(base_url=f"http://127.0.0.1:{port}/api", auth=("guest", "guest"),
                        timeout=5)


def _create_vhost(api: httpx.Client, name: str) -> None:
    assert api.put(f"/vhosts/{name}").status_code == 201
    assert api.put(f"/permissions/{name}/guest", json={
        "configure": ".*", "write": ".*", "read": ".*"}).status_code in (201, 204)


def _retained(broker: EmbeddedBroker, username: str) -> list[bytes]:
    """The retained messages a new subscriber to `keep/#` gets."""
    client = Client(broker.server.frontend_ports["mqtt"], "reader", username=username)
    try:
        client.connected()
        client.subscribe("keep/#", 1)
        found = []
        while True:
            try:
                found.append(client.message(timeout=0.5).payload)
            except queue.Empty:
                return sorted(found)
    finally:
        client.close()


def _session_present(broker: EmbeddedBroker, username: str) -> bool:
    conn = RawMqtt(broker.server.frontend_ports["mqtt"], V5)
    try:
        connack = conn.connect("kept", clean_start=False, username=username,
                               password=b"guest",
                               properties={"session_expiry_interval": 3600})
        assert isinstance(connack, p.Connack) and connack.reason_code == 0
        return connack.session_present
    finally:
        conn.close()


def test_deleting_a_vhost_removes_its_retained_messages_and_sessions(tmp_path: Path) -> None:
    with broker_in_thread(mqtt_port=free_port(), management_port=free_port(),
                          data_dir=str(tmp_path)) as broker, _api(broker) as api:
        _create_vhost(api, "x")
        port = broker.server.frontend_ports["mqtt"]
        for username, payload in (("x:guest", b"in x"), ("guest", b"in /")):
            pub = Client(port, "pub", username=username)
            pub.connected()
            pub.publish("keep/a", payload, 1, retain=True)
            pub.close()
        conn = RawMqtt(port, V5)  # a persistent session with a QoS 2 exchange open
        conn.connect("kept", clean_start=False, username="x:guest", password=b"guest",
                     properties={"session_expiry_interval": 3600})
        conn.send_packet(p.Publish("keep/q2", b"", qos=2, packet_id=3))
        assert conn.packet() == p.Pubrec(3)
        conn.close()
        broker.wait_for_connections(0)
        assert _retained(broker, "x:guest") == [b"in x"]

        assert api.delete("/vhosts/x").status_code == 204
        _create_vhost(api, "x")
        assert _retained(broker, "x:guest") == []
        assert _session_present(broker, "x:guest") is False
        assert _retained(broker, "guest") == [b"in /"]

        broker.restart()
        assert _retained(broker, "x:guest") == []
        assert _retained(broker, "guest") == [b"in /"]
