"""A wire protocol over WebSocket, as RabbitMQ's rabbitmq_web_stomp and rabbitmq_web_mqtt
plugins serve it: an ASGI app (served by `http.HttpListener`) whose endpoint `/ws`
negotiates the subprotocol, then runs the protocol's usual owner through
`Server.serve_client`, the WebSocket's messages standing in for the socket's bytes.

Received messages, text or binary, are the bytes the owner reads; what the owner writes
goes out as one message per write, text for STOMP (binary when it is not UTF-8: a body
may be anything) and binary for MQTT. Everything else (heartbeats, resource alarms,
shutdown, dropped connections, the management API) is the server's, as for a TCP
connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute
from starlette.types import Message, Receive, Scope, Send

from amqpbroker.transport.owner import OwnerBase, OwnerFactory
from amqpbroker.transport.server import Server

PATH = "/ws"


@dataclass(frozen=True)
class WebProtocol:
    """How one protocol is offered over WebSocket: the subprotocols it answers to (the
    first the client also offers is chosen), whether the client must offer one, and
    whether output goes out as text messages."""

    name: str
    subprotocols: tuple[str, ...]
    required: bool
    text: bool

    def negotiate(self, offered: list[str]) -> tuple[bool, str | None]:
        """Whether a client offering `offered` is served, and the subprotocol to echo."""
        chosen = next((name for name in self.subprotocols if name in offered), None)
        if chosen is not None:
            return True, chosen
        return not offered and not self.required, None


# No subprotocol at all is accepted for STOMP, as RabbitMQ does; only unknown ones are not.
STOMP = WebProtocol("stomp", ("v12.stomp", "v11.stomp", "v10.stomp", "stomp"),
                    required=False, text=True)
MQTT = WebProtocol("mqtt", ("mqtt",), required=True, text=False)


class WebSocketStream(ByteStream):
    """One accepted WebSocket as the byte stream `Server.serve_client` reads and writes.

    Its `SocketAttribute.raw_socket` is the TCP socket under the WebSocket (what
    `Server.drop` resets), found through the ASGI server's connection object: uvicorn's
    `send` is a method of its protocol, which holds the asyncio transport. Under a server
    that does not show it, the stream has no socket attribute."""

    def __init__(self, receive: Receive, send: Send, *, text: bool) -> None:
        self._receive = receive
        self._send = send
        self._text = text
        self._closed = False

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        transport = getattr(getattr(self._send, "__self__", None), "transport", None)
        get_extra_info = getattr(transport, "get_extra_info", None)
        sock = get_extra_info("socket") if get_extra_info is not None else None
        return {} if sock is None else {SocketAttribute.raw_socket: lambda: sock}

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """The next non-empty message (a whole message, whatever `max_bytes` says)."""
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._closed = True
                raise anyio.EndOfStream
            text = message.get("text")
            data = text.encode() if text is not None else message.get("bytes")
            if data:
                return bytes(data)

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        message: Message = {"type": "websocket.send", "bytes": item}
        if self._text:
            with contextlib.suppress(UnicodeDecodeError):
                message = {"type": "websocket.send", "text": item.decode()}
        await self._send(message)

    async def send_eof(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the WebSocket (1000) unless the peer already did."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            await self._send({"type": "websocket.close", "code": 1000})


class WebSocketApp:
    """The ASGI app of one protocol's WebSocket listener: `/ws` for `protocol`, served by
    owners that `factory` builds on `server`."""

    def __init__(self, server: Server, protocol: WebProtocol, factory: OwnerFactory) -> None:
        self.server = server
        self.protocol = protocol
        self.factory = factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": b"Not Found"})
            return
        if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
            return
        served, subprotocol = self.protocol.negotiate(list(scope.get("subprotocols", ())))
        if scope["path"] != PATH or not served or not self.server.admits():
            await send({"type": "websocket.close", "code": 1000})  # before accept: a 403
            return
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await self.server.serve_client(
            WebSocketStream(receive, send, text=self.protocol.text), self._web_owner,
            scope.get("client"), local=scope.get("server"))

    def _web_owner(self, *args: Any, **kwargs: Any) -> OwnerBase:
        """The protocol's owner, marked as served over WebSocket (the management API
        names its protocol "Web STOMP 1.2" and so on)."""
        owner: OwnerBase = self.factory(*args, **kwargs)
        owner.web = True
        return owner
