"""The WebSocket transport without a socket: subprotocol negotiation, the WebSocket
listeners a server's frontends give (Web MQTT only once an "mqtt" frontend exists), and
the ASGI app driven by hand with a binary (MQTT-shaped) protocol, whose owner here is the
STOMP one standing in for any owner."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from amqpbroker.app import build, web_apps
from amqpbroker.config import Settings
from amqpbroker.transport.server import Server
from amqpbroker.transport.stomp import StompClient
from amqpbroker.transport.websocket import MQTT, STOMP, WebSocketApp

pytestmark = pytest.mark.timeout(30)
CONNECT = b"CONNECT\naccept-version:1.2\nhost:/\n\n\x00"


@pytest.mark.parametrize(("protocol", "offered", "expected"), [
    (STOMP, ["v12.stomp"], (True, "v12.stomp")),
    (STOMP, ["v10.stomp", "v11.stomp"], (True, "v11.stomp")),
    (STOMP, ["stomp"], (True, "stomp")),
    (STOMP, [], (True, None)),
    (STOMP, ["mqtt"], (False, None)),
    (MQTT, ["mqtt"], (True, "mqtt")),
    (MQTT, ["chat", "mqtt"], (True, "mqtt")),
    (MQTT, [], (False, None)),
    (MQTT, ["v12.stomp"], (False, None)),
])
def test_negotiation(protocol: Any, offered: list[str], expected: tuple[bool, str | None]
                     ) -> None:
    assert protocol.negotiate(offered) == expected


def settings() -> Settings:
    return Settings(host="127.0.0.1", port=0, management_port=0, prometheus_port=0,
                    stomp_port=0, web_stomp_port=15674, web_mqtt_port=15675)


async def test_a_protocol_is_served_over_websocket_only_with_its_frontend() -> None:
    server = build(settings())
    assert [(app.protocol.name, port) for app, port in web_apps(settings(), server)] == [
        ("stomp", 15674), ("mqtt", 15675)]
    server.frontends = tuple(f for f in server.frontends if f.name != "mqtt")
    assert [app.protocol.name for app, _ in web_apps(settings(), server)] == ["stomp"]


class Peer:
    """The ASGI server's side of one WebSocket: what the client sent, what the app sent."""

    def __init__(self, subprotocols: list[str]) -> None:
        self.scope = {"type": "websocket", "path": "/ws", "subprotocols": subprotocols,
                      "client": ("127.0.0.1", 40000)}
        self.incoming, self.inbox = anyio.create_memory_object_stream[dict[str, Any]](16)
        self.sent: list[dict[str, Any]] = []
        self.incoming.send_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.receive()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def until(predicate: Any) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.sleep(0.01)


async def run(server: Server, peer: Peer) -> None:
    app = WebSocketApp(server, MQTT, StompClient)
    await app(peer.scope, peer.receive, peer.send)  # type: ignore[arg-type]


async def test_a_binary_protocol_runs_its_owner_over_the_messages() -> None:
    server = build(settings())
    peer = Peer(["mqtt"])
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run, server, peer)
        await until(lambda: peer.sent)
        assert peer.sent[0] == {"type": "websocket.accept", "subprotocol": "mqtt"}
        peer.incoming.send_nowait({"type": "websocket.receive", "bytes": CONNECT})
        await until(lambda: len(peer.sent) == 2)
        reply = peer.sent[1]
        assert reply["type"] == "websocket.send"
        assert reply["bytes"].startswith(b"CONNECTED\n")  # binary, not text
        [client] = server.clients
        assert client.web and client.peer == "127.0.0.1:40000"
        peer.incoming.send_nowait({"type": "websocket.disconnect", "code": 1001})
    assert server.clients == set()
    assert len(peer.sent) == 2  # nothing sent once the peer is gone


async def test_an_owner_that_closes_closes_the_websocket() -> None:
    server = build(settings())
    peer = Peer(["mqtt"])
    peer.incoming.send_nowait({"type": "websocket.receive", "bytes": b"NONSENSE\n\n\x00"})
    await run(server, peer)
    assert [message["type"] for message in peer.sent] == [
        "websocket.accept", "websocket.send", "websocket.close"]
    assert peer.sent[1]["bytes"].startswith(b"ERROR\n")
    assert server.clients == set()


@pytest.mark.parametrize("subprotocols", [[], ["v12.stomp"]])
async def test_a_client_without_the_subprotocol_is_refused(subprotocols: list[str]) -> None:
    server = build(settings())
    peer = Peer(subprotocols)
    await run(server, peer)
    assert peer.sent == [{"type": "websocket.close", "code": 1000}]
    assert server.broker.churn.connection_created == 0
