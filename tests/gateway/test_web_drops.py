"""`EmbeddedBroker.drop_connection` on WebSocket connections (Web STOMP, Web MQTT): the
TCP connection under the WebSocket is reset, the client sees it lost without a close
frame, and the broker treats it as a network failure (an MQTT will fires)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.mqtt_clients import Client
from support.processes import free_port
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import ClientConnection, connect

from amqpbroker.protocol.mqtt import codec
from amqpbroker.protocol.mqtt import packets as p
from amqpbroker.testing import EmbeddedBroker, broker_in_thread

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10.0


@pytest.fixture
def ports() -> dict[str, int]:
    return {"mqtt_port": free_port(), "web_stomp_port": free_port(),
            "web_mqtt_port": free_port()}


@pytest.fixture
def broker(ports: dict[str, int]) -> Iterator[EmbeddedBroker]:
    with broker_in_thread(**ports) as embedded:
        yield embedded


def _websocket(port: int, subprotocol: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{port}/ws", subprotocols=[subprotocol],
                   open_timeout=TIMEOUT, close_timeout=1)


def _drop(broker: EmbeddedBroker, ws: ClientConnection) -> None:
    """Drop the broker's connection of `ws`; the client sees it lost, no close frame."""
    peer = "{}:{}".format(*ws.local_address[:2])
    [info] = [c for c in broker.connections() if c.peer == peer]
    broker.drop_connection(info)
    with pytest.raises(ConnectionClosedError) as lost:
        ws.recv(timeout=TIMEOUT)
    assert lost.value.rcvd is None


def test_drop_a_web_stomp_connection(broker: EmbeddedBroker, ports: dict[str, int]) -> None:
    with _websocket(ports["web_stomp_port"], "v12.stomp") as ws:
        ws.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")
        assert str(ws.recv(timeout=TIMEOUT)).startswith("CONNECTED\n")
        _drop(broker, ws)
    broker.wait_for_connections(0)


def test_drop_a_web_mqtt_connection_fires_its_will(broker: EmbeddedBroker,
                                                   ports: dict[str, int]) -> None:
    watcher = Client(ports["mqtt_port"], "watcher")
    try:
        watcher.connected()
        watcher.subscribe("wills/#", 1)
        with _websocket(ports["web_mqtt_port"], "mqtt") as ws:
            ws.send(codec.encode(p.Connect(p.MQTT_311, "web-dropped", keepalive=60,
                                           will=p.Will("wills/web", b"gone", 1)),
                                 p.MQTT_311))
            assert ws.recv(timeout=TIMEOUT) == b"\x20\x02\x00\x00"  # CONNACK, accepted
            _drop(broker, ws)
        message = watcher.message()
        assert (message.topic, message.payload) == ("wills/web", b"gone")
        broker.wait_for_connections(1)
    finally:
        watcher.close()
