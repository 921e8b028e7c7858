"""MQTT connections in the management API: protocol and client properties as RabbitMQ's
MQTT plugin shows them."""

from __future__ import annotations

import httpx
import pytest
from support.mqtt_clients import V5, V311, Client
from support.processes import free_port

from amqpbroker.testing import broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(60)


def test_connections_listed() -> None:
    with broker_in_thread(mqtt_port=free_port(), management_port=free_port()) as broker:
        port = broker.server.frontend_ports["mqtt"]
        api = f"http://127.0.0.1:{broker._controller.settings.management_port}/api/connections"
        clients = [Client(port, "dev-1", version=V311), Client(port, "dev-5", version=V5)]
        try:
            for client in clients:
                client.connected()

            def listed() -> list[dict[str, object]]:
                found = httpx.get(api, auth=("guest", "guest"), timeout=5).json()
                return found if len(found) == 2 else []

            rows = sorted(wait_for(listed, what="two MQTT connections"),
                          key=lambda row: str(row["protocol"]))
            assert [row["protocol"] for row in rows] == ["MQTT 3.1.1", "MQTT 5.0"]
            assert rows[0]["client_properties"] == {"product": "MQTT client",
                                                    "client_id": "dev-1"}
            assert rows[0]["user"] == "guest" and rows[0]["vhost"] == "/"
        finally:
            for client in clients:
                client.close()

