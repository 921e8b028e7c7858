"""The management API names each connection by the listener the client connected to:
"peer -> local" with the local address (and `host`, `port`) of the AMQP, MQTT, STOMP,
Web STOMP or Web MQTT listener, as RabbitMQ does."""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import Any

import httpx
import pika
import pytest
from support.mqtt_clients import Client
from support.processes import free_port
from support.stomp_clients import connect as stomp_connect
from websockets.sync.client import connect as ws_connect

from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.testing import broker_in_thread, wait_for

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10.0


def test_each_connection_shows_its_own_listener() -> None:
    ports = {"mqtt_port": free_port(), "stomp_port": free_port(),
             "web_stomp_port": free_port(), "web_mqtt_port": free_port(),
             "management_port": free_port()}
    with broker_in_thread(**ports) as broker, httpx.Client(
            base_url=f"http://127.0.0.1:{ports['management_port']}/api",
            auth=("guest", "guest"), timeout=TIMEOUT) as api, contextlib.ExitStack() as stack:
        amqp = pika.BlockingConnection(pika.URLParameters(broker.url))
        stack.callback(amqp.close)
        mqtt = Client(ports["mqtt_port"], "addressed")
        stack.callback(mqtt.close)
        stomp, _ = stomp_connect(ports["stomp_port"])
        stack.callback(stomp.disconnect)
        web_stomp = stack.enter_context(ws_connect(
            f"ws://127.0.0.1:{ports['web_stomp_port']}/ws", subprotocols=["v12.stomp"],
            open_timeout=TIMEOUT))
        web_mqtt = stack.enter_context(ws_connect(
            f"ws://127.0.0.1:{ports['web_mqtt_port']}/ws", subprotocols=["mqtt"],
            open_timeout=TIMEOUT))
        mqtt.connected()
        web_stomp.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\n"
                       "passcode:guest\n\n\x00")
        assert str(web_stomp.recv(timeout=TIMEOUT)).startswith("CONNECTED\n")
        web_mqtt.send(codec.encode(p.Connect(p.MQTT_311, "web-addressed", keepalive=60),
                                   p.MQTT_311))
        assert web_mqtt.recv(timeout=TIMEOUT) == b"\x20\x02\x00\x00"

        def listed() -> list[dict[str, Any]]:
            rows = api.get("/connections").json()
            return rows if len(rows) == 5 else []

        rows = wait_for(listed, what="five connections")
        expected = {"AMQP 0-9-1": broker.port, "MQTT 3.1.1": ports["mqtt_port"],
                    "STOMP 1.2": ports["stomp_port"],
                    "Web STOMP 1.2": ports["web_stomp_port"],
                    "Web MQTT 3.1.1": ports["web_mqtt_port"]}
        assert sorted(row["protocol"] for row in rows) == sorted(expected)
        for row in rows:
            local = expected[row["protocol"]]
            assert (row["host"], row["port"]) == ("127.0.0.1", local), row
            assert row["name"] == (
                f"{row['peer_host']}:{row['peer_port']} -> 127.0.0.1:{local}")
            one = api.get("/connections/" + urllib.parse.quote(row["name"], safe=""))
            assert one.status_code == 200 and one.json()["name"] == row["name"]
